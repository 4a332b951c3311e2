//! `canopy backup <path>`: a consistent copy of a SQLite database while it is being served.
//!
//! `VACUUM INTO` (SQLite 3.27+) reads the database inside one read transaction and writes a
//! compacted copy: in WAL mode readers do not block writers, so the server keeps committing
//! while the copy is made, and the copy holds exactly the transactions committed when the read
//! began — a change and its events together, or neither (DESIGN invariant 1). Copying the file
//! with `cp` instead can tear a transaction or miss the part still in the `-wal` file.
//!
//! The copy is given a new stream epoch: once served, its stream goes on from the backup's
//! head with seqs the original may already have handed out for other events, so a canvas that
//! saw the original must resynchronize rather than resume (see `realtime::session`).
//!
//! PostgreSQL is backed up with its own tools (`pg_dump`/`pg_restore`, see the README).

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::ManageConnection;
use diesel::sql_types::Text;

use super::connection::{DatabaseUrl, DbConnection, DbManager};

/// Why a backup was not written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// `DATABASE_URL` points at PostgreSQL.
    #[error(
        "canopy backup copies SQLite databases; back up PostgreSQL with pg_dump \
         (see the README, \"Backup and restore\")"
    )]
    NotSqlite,
    /// The destination exists: a backup never overwrites a file.
    #[error("{0} already exists (a backup never overwrites a file)")]
    DestinationExists(PathBuf),
    /// The database could not be opened or read, or the copy could not be written or checked.
    #[error("backup failed: {0}")]
    Sqlite(String),
    /// The copy could not be created, flushed or renamed.
    #[error("backup failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy's path, as given.
    pub path: PathBuf,
    /// The copy's size in bytes.
    pub bytes: u64,
}

/// Writes a consistent copy of the SQLite database at `url` to `destination`, which must not
/// exist. The copy is written beside it under a temporary name (`<destination>.partial`),
/// checked with `PRAGMA quick_check`, given a new stream epoch, flushed to disk and then
/// renamed, so `destination` either does not exist or is a complete database. `busy_timeout`
/// bounds the wait for SQLite's locks.
///
/// # Errors
///
/// [`BackupError::NotSqlite`] for PostgreSQL, [`BackupError::DestinationExists`], and
/// [`BackupError::Sqlite`] / [`BackupError::Io`] when the source cannot be read (a missing file
/// is not created) or the copy cannot be written, checked or moved into place.
///
/// Blocking: call it from a command-line path or `spawn_blocking`, never on an actix worker.
pub fn backup_sqlite(
    url: &DatabaseUrl,
    destination: &Path,
    busy_timeout: Duration,
) -> Result<BackupReport, BackupError> {
    let DatabaseUrl::Sqlite(source) = url else {
        return Err(BackupError::NotSqlite);
    };
    // Opening a missing file would create an empty database and "back it up".
    if !Path::new(source).is_file() {
        return Err(BackupError::Sqlite(format!(
            "no SQLite database at {source}"
        )));
    }
    if destination.exists() {
        return Err(BackupError::DestinationExists(destination.to_path_buf()));
    }
    let partial = partial_path(destination);
    // A leftover from an interrupted backup is ours to replace: VACUUM INTO refuses a non-empty file.
    match std::fs::remove_file(&partial) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let result = write_and_check(url, &partial, busy_timeout);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::File::open(&partial)?.sync_all()?;
    // `rename` replaces silently; check once more so a file created meanwhile is not lost.
    if destination.exists() {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::DestinationExists(destination.to_path_buf()));
    }
    std::fs::rename(&partial, destination)?;
    if let Some(dir) = destination.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Makes the rename itself durable; not every filesystem lets a directory be synced.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(BackupReport {
        path: destination.to_path_buf(),
        bytes: std::fs::metadata(destination)?.len(),
    })
}

fn partial_path(destination: &Path) -> PathBuf {
    let mut name = destination.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn write_and_check(
    url: &DatabaseUrl,
    partial: &Path,
    busy_timeout: Duration,
) -> Result<(), BackupError> {
    let sqlite_error = |e: &dyn std::fmt::Display| BackupError::Sqlite(e.to_string());
    let partial_text = partial
        .to_str()
        .ok_or_else(|| BackupError::Sqlite("the destination path is not UTF-8".into()))?;
    // The server's own connection settings (WAL, busy_timeout), so the copy waits for locks the
    // way the server does instead of failing at once.
    let mut conn = DbManager::new(url.clone(), busy_timeout)
        .connect()
        .map_err(|e| sqlite_error(&e))?;
    let DbConnection::Sqlite(source) = &mut conn else {
        return Err(BackupError::NotSqlite);
    };
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(partial_text)
        .execute(source)
        .map_err(|e| sqlite_error(&e))?;

    let mut copy = SqliteConnection::establish(partial_text).map_err(|e| sqlite_error(&e))?;
    // The same form as the initial migration's epoch.
    let epochs = diesel::sql_query("UPDATE stream_meta SET epoch = lower(hex(randomblob(16)))")
        .execute(&mut copy)
        .map_err(|e| BackupError::Sqlite(format!("not a Canopy database: {e}")))?;
    if epochs != 1 {
        return Err(BackupError::Sqlite(
            "not a Canopy database: no stream_meta row".into(),
        ));
    }
    let verdict: Vec<QuickCheck> = diesel::sql_query("PRAGMA quick_check")
        .load(&mut copy)
        .map_err(|e| sqlite_error(&e))?;
    match verdict.as_slice() {
        [row] if row.quick_check == "ok" => Ok(()),
        rows => Err(BackupError::Sqlite(format!(
            "the copy failed its integrity check: {:?}",
            rows.iter().map(|r| &r.quick_check).collect::<Vec<_>>()
        ))),
    }
}

#[derive(QueryableByName)]
struct QuickCheck {
    #[diesel(sql_type = Text)]
    quick_check: String,
}
