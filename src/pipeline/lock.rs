//! One process per run folder: `run` (fresh or `--resume`) holds an OS
//! advisory lock on the folder's lock file for as long as it writes there,
//! so a second `run` into the same folder stops at once instead of mixing
//! its checkpoints and records with the first's. The operating system
//! releases the lock when the holder exits, however it exits (an error, a
//! panic, a kill), so a stale lock never blocks a later `--resume`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::Error;

/// The lock file inside a run folder; it says who holds the folder.
pub const LOCK: &str = "run.lock";

/// A held run folder; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    file: File,
}

impl RunLock {
    /// Locks `dir` (created if missing) for this process, or fails with a
    /// message naming the folder and its holder.
    pub fn acquire(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK);
        // Not truncated on open: the holder's note stays readable until the
        // lock is ours.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another splitguard process".to_string(),
                    h => h.to_string(),
                };
                return Err(Error::Run(format!(
                    "{}: the run folder is in use by {holder} (lock file {}); wait for it to finish, or write to another --out",
                    dir.display(),
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(&path, format!("cannot lock the run folder: {e}")));
            }
        }
        let note = format!("splitguard process {}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(note.as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self { file })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first makes
        // the release independent of other handles to the same file.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_folder_refuses_a_second_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = RunLock::acquire(&run).unwrap();
        let err = RunLock::acquire(&run).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&run.display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "names the holder: {msg}"
        );
        drop(first);
        RunLock::acquire(&run).expect("released on drop");
    }
}
