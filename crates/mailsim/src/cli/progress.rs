//! The progress line of long commands (`mailsim run`, `mailsim bench`): indicatif on stderr, only
//! when stderr is a terminal (never in CI logs or pipes) and the output is not JSON.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress line counting to `total` (a spinner when `None`), or nothing when stderr is not a
/// terminal or `json` output was asked for.
pub fn bar(total: Option<u64>, json: bool) -> Option<ProgressBar> {
    if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = match total {
        Some(_) => "{bar:30} {pos}/{len} {elapsed} {msg}",
        None => "{spinner} {pos} done, {elapsed} {msg}",
    };
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}
