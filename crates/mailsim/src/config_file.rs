//! Reading a configuration file (tenant, scenario, `.eml`) from disk before a loader sees it: the
//! path must be a regular file (a directory or a device is refused: `mailsim run dir.toml/` once
//! ran nothing and passed), and its bytes UTF-8 (the first bad byte is reported at its line and
//! column). Every failure is a `ConfigError` naming the file, so callers print one kind of error.

use std::path::Path;

use mailsim_core::diagnostics::{ConfigError, utf8_text};

/// The largest configuration file (or `.eml`) read: 16 MiB.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The text of the configuration file at `path`.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    let file = path.display().to_string();
    let refuse = |message: String| ConfigError::at("", &file, &(0..0), "", message);
    let meta = std::fs::metadata(path).map_err(|e| refuse(format!("cannot read the file: {e}")))?;
    if meta.is_dir() {
        return Err(refuse("is a directory, not a file".to_string())
            .with_hint("name a file; `mailsim run DIR` (without a file extension) runs every .toml in a folder"));
    }
    if !meta.is_file() {
        return Err(refuse("is not a regular file".to_string()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(refuse(format!("is {} bytes; a configuration file is at most 16 MiB", meta.len())));
    }
    let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read the file: {e}")))?;
    utf8_text(&bytes, &file).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: a directory given as a file, a device, and bytes that are not UTF-8.
    #[test]
    fn directories_devices_and_bad_bytes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("some-dir.toml");
        std::fs::create_dir(&sub).unwrap();
        let e = read(&sub).unwrap_err();
        assert_eq!(e.message, "is a directory, not a file");
        assert_eq!((e.line, e.column), (1, 1));
        assert_eq!(read(Path::new("/dev/zero")).unwrap_err().message, "is not a regular file");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, b"[Transport]\n# caf\xe9\n").unwrap();
        let e = read(&bad).unwrap_err();
        assert_eq!((e.line, e.column), (2, 6), "{e}");
        assert!(read(&dir.path().join("missing.toml")).unwrap_err().message.starts_with("cannot read the file"));
    }
}
