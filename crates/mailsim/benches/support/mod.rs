//! What every benchmark of this crate shares (a module of each, not a benchmark of its own).

/// A count from the environment (`MESSAGES`, `SESSIONS`, `ROUNDS`, …), or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
