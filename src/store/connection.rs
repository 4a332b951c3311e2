//! One connection type for SQLite and PostgreSQL, chosen from the URL scheme.

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Where the database is. Parsed once from `DATABASE_URL`; the variant decides the connection
/// type, so a typo in a PostgreSQL URL is reported as such instead of silently opening a
/// SQLite file named after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    /// A path to the SQLite file (without the `sqlite://` prefix).
    Sqlite(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(raw.to_string()));
        }
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("sqlite URL has no path (use sqlite://canopy.db)".into());
            }
            return Ok(DatabaseUrl::Sqlite(path.to_string()));
        }
        Err("must start with sqlite://, postgres:// or postgresql://".into())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres(_) => "postgres",
            DatabaseUrl::Sqlite(_) => "sqlite",
        }
    }
}

/// How long a statement waits for a lock before failing, unless configured
/// (`DATABASE_BUSY_TIMEOUT_MS`): SQLite's `busy_timeout` for the write lock (writes are
/// serialized, and a burst of drags must queue rather than error), PostgreSQL's `lock_timeout`
/// (the stream lock, row locks). Past it the request answers 503 with `Retry-After`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct DbManager {
    url: DatabaseUrl,
    busy_timeout: Duration,
}

impl DbManager {
    pub fn new(url: DatabaseUrl, busy_timeout: Duration) -> Self {
        DbManager { url, busy_timeout }
    }
}

impl ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn =
                    diesel::PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(&format!(
                    "SET lock_timeout = {}",
                    self.busy_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Postgres(conn))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)
                    .map_err(r2d2::Error::ConnectionError)?;
                // Per-connection settings: SQLite does not persist these (except WAL).
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    self.busy_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        match conn {
            DbConnection::Postgres(c) => AnsiTransactionManager::is_broken_transaction_manager(c),
            DbConnection::Sqlite(c) => AnsiTransactionManager::is_broken_transaction_manager(c),
        }
    }
}

/// Starts a write transaction. SQLite gets `BEGIN IMMEDIATE`: a deferred transaction that reads
/// first and writes later fails with SQLITE_BUSY (not retried) when another writer committed in
/// between; taking the write lock up front makes writers queue on `busy_timeout` instead.
pub(crate) fn begin_write_transaction(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
    }
}

pub(crate) fn commit_transaction(conn: &mut DbConnection) -> QueryResult<()> {
    <DbConnection as Connection>::TransactionManager::commit_transaction(conn)
}

pub(crate) fn rollback_transaction(conn: &mut DbConnection) -> QueryResult<()> {
    <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
}
