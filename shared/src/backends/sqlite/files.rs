//! The SQLite file holds raw bodies (customers' names, phone numbers) and, locally, the
//! credential table's signing secrets (ARCHITECTURE §11, decision 32), so only its owner may
//! read it: the file is created 0600 (SQLite gives its `-wal` and `-shm` files the database
//! file's mode) and the folders created for it 0700. An existing file readable by others
//! (made by an earlier version, 0644) is narrowed to 0600; existing folders are left as they
//! are (they may be shared ones, such as a home or a temporary folder).

use std::io;
use std::path::Path;

/// Creates `path`'s missing folders (0700) and the file itself (0600) if absent, and
/// narrows an existing file to 0600.
pub(super) fn prepare_private(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        private_dirs(parent)?;
    }
    private_file(path)
}

#[cfg(unix)]
fn private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        // Only the owner may change a mode: another user sharing the file by its group
        // keeps it as it is, told so, rather than being refused.
        if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700)) {
            tracing::warn!(path = %path.display(), error = %e, "the SQLite file is readable by others and its mode could not be narrowed to 0600");
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_dirs(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(not(unix))]
fn private_file(_: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::backends::sqlite::SqliteStore;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_file_its_journal_and_new_folders_are_the_owners_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data/local/w.db");
        let store = SqliteStore::open(&db, false).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.path().join("data/local")), 0o700);
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        let wal = dir.path().join("data/local/w.db-wal");
        assert!(wal.exists());
        assert_eq!(mode(&wal), 0o600);
        drop(store);

        let old = dir.path().join("old.db");
        std::fs::write(&old, b"").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        SqliteStore::open(&old, false).unwrap();
        assert_eq!(
            mode(&old),
            0o600,
            "an earlier version's 0644 file is narrowed"
        );
    }
}
