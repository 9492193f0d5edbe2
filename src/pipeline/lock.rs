//! One process per run folder: `run` (fresh or `--resume`) holds an OS
//! advisory lock on the folder's lock file for as long as it writes there,
//! so a second `run` into the same folder stops at once instead of mixing
//! its checkpoints and records with the first's. The operating system
//! releases the lock when the holder exits, however it exits (an error, a
//! panic, a kill), so a stale lock never blocks a later `--resume`.
//!
//! The commands that read a finished run folder (`attack`,
//! `export-features`, `partition`) take the same lock shared
//! ([`RunLock::share`]): any number of them run side by side, but not
//! while a `run` writes there, and a `run` into the folder waits for none
//! of them silently: it stops with the same message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::Error;
use crate::run_folder::RunFolderError;

/// The lock file inside a run folder; it says who holds the folder.
pub const LOCK: &str = crate::run_folder::LOCK;

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
                let holder = holder(&mut file);
                return Err(RunFolderError::InUse {
                    dir: dir.to_path_buf(),
                    holder,
                    lock: path,
                }
                .into());
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

impl RunLock {
    /// Holds `dir` shared, for a command that reads the run folder: refused
    /// with a message naming the holder while a `run` writes there. A
    /// folder without a lock file was never written by a running `run`
    /// (nothing to wait for): `Ok(None)`.
    pub fn share(dir: &Path) -> Result<Option<Self>, Error> {
        let path = dir.join(LOCK);
        // Read-only: a shared lock needs no write access, so a read-only
        // copy of a run folder can still be attacked and exported.
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(Self { file })),
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&mut file);
                Err(RunFolderError::BeingWritten {
                    dir: dir.to_path_buf(),
                    holder,
                    lock: path,
                }
                .into())
            }
            Err(TryLockError::Error(e)) => {
                Err(Error::io(&path, format!("cannot lock the run folder: {e}")))
            }
        }
    }
}

/// Who holds a locked folder, as its lock file says.
fn holder(file: &mut File) -> String {
    let mut note = String::new();
    let _ = file.read_to_string(&mut note);
    match note.trim() {
        "" => "another splitguard process".to_string(),
        h => h.to_string(),
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

    #[test]
    fn readers_share_a_folder_but_not_with_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        // Never written by a running `run`: nothing to hold.
        assert!(RunLock::share(&run).unwrap().is_none());
        let writer = RunLock::acquire(&run).unwrap();
        let err = RunLock::share(&run).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(
            err.to_string()
                .contains("being written by splitguard process"),
            "{err}"
        );
        drop(writer);
        let a = RunLock::share(&run)
            .unwrap()
            .expect("a lock file exists now");
        let b = RunLock::share(&run).unwrap().expect("readers share");
        assert!(
            RunLock::acquire(&run).is_err(),
            "a writer waits for the readers"
        );
        drop((a, b));
        RunLock::acquire(&run).expect("free again");
    }
}
