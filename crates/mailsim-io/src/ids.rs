//! The world's id epoch, persisted under the state directory (`<state-dir>/id-epoch`) so that ids
//! stay unique across restarts on the same state (`mailsim_core::ids`).

use std::io::Write;
use std::path::Path;

use mailsim_core::ids::IdSource;
use mailsim_core::time::Timestamp;

/// File name of the persisted epoch.
pub const EPOCH_FILE: &str = "id-epoch";

/// A source for a run without state: epoch from the start time.
pub fn ephemeral(now: Timestamp) -> IdSource {
    IdSource::new(IdSource::epoch_from_time(now.as_millis() / 1000))
}

/// A source for a run on `dir`: the epoch after the one recorded there (the start time's for a new
/// state directory), written back before any id is handed out. Fails when the file is unreadable,
/// garbled or cannot be written: ids that might repeat would overwrite message files.
pub fn persistent(dir: &Path, now: Timestamp) -> std::io::Result<IdSource> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(EPOCH_FILE);
    let epoch = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let last: u64 = text.trim().parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not an id epoch: {:?}", path.display(), text.trim()),
                )
            })?;
            last + 1
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => IdSource::epoch_from_time(now.as_millis() / 1000),
        Err(e) => return Err(e),
    };
    let source = IdSource::new(epoch);
    let tmp = dir.join(format!("{EPOCH_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{}", source.epoch())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_on_one_state_dir_gets_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::from_millis(1_700_000_000_000);
        let a = persistent(dir.path(), now).unwrap();
        let b = persistent(dir.path(), now).unwrap();
        assert_eq!(b.epoch(), a.epoch() + 1);
        assert_ne!(a.next_id(), b.next_id());
        std::fs::write(dir.path().join(EPOCH_FILE), "garbage").unwrap();
        assert!(persistent(dir.path(), now).is_err());
    }
}
