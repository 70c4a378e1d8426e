//! The state directory: files written crash-safely (temp file + fsync + rename + fsync of
//! the directory), secrets at 0600 in a 0700 directory.

pub mod credentials;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum StoreError {
    /// state directory {path}: {source}
    Io { path: PathBuf, source: io::Error },
    /// {path} is not valid: {reason}; it was moved aside to {moved_to}
    Corrupt {
        path: PathBuf,
        reason: String,
        moved_to: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    /// Opens (creating) the directory and makes it 0700.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        fs::create_dir_all(&path).map_err(io_err(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(io_err(&path))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Replaces `name` atomically with `bytes`, mode 0600: readers see the old or the new
    /// content, never a torn file, whatever moment the process dies at.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let target = self.file(name);
        let temp = self.file(&format!(".{name}.tmp.{}", std::process::id()));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            // An existing temp file keeps its old mode: set it explicitly.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temp, &target)?;
            File::open(&self.path)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map_err(io_err(&target))
    }

    /// The content of `name`, or None when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.file(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Moves a file that cannot be read aside (`name.corrupt-<unix secs>`), keeping it for
    /// a technician, and returns where it went.
    pub fn move_aside(&self, name: &str) -> Result<PathBuf, StoreError> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let to = self.file(&format!("{name}.corrupt-{secs}"));
        fs::rename(self.file(name), &to).map_err(io_err(&to))?;
        Ok(to)
    }

    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        let path = self.file(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Factory reset: removes every file in the directory (the directory stays).
    pub fn wipe(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.path).map_err(io_err(&self.path))? {
            let entry = entry.map_err(io_err(&self.path))?;
            let path = entry.path();
            let result = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed += 1,
                // Gone since the listing: an atomic write's temporary file renamed by its
                // writer (the bookings cache persists the emptied model meanwhile).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.path))?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_0600_in_a_0700_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        assert_eq!(mode(state.path()), 0o700);
        state.write_atomic("secret.json", b"{}").unwrap();
        assert_eq!(mode(&state.file("secret.json")), 0o600);
        state.write_atomic("secret.json", b"{\"v\":2}").unwrap();
        assert_eq!(state.read("secret.json").unwrap().unwrap(), b"{\"v\":2}");
        assert_eq!(mode(&state.file("secret.json")), 0o600);
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(state.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["secret.json"]);
    }

    #[test]
    fn missing_files_read_as_none_and_wipe_empties() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert!(state.read("nope").unwrap().is_none());
        state.write_atomic("a", b"1").unwrap();
        state.write_atomic("b", b"2").unwrap();
        let aside = state.move_aside("b").unwrap();
        assert!(
            aside
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("b.corrupt-")
        );
        assert_eq!(state.wipe().unwrap(), 2);
        assert!(state.read("a").unwrap().is_none());
    }
}
