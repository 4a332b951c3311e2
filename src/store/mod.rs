//! The Store seam: Diesel over r2d2, one connection enum for SQLite and PostgreSQL. All SQL
//! lives below this module. Every call runs on the blocking pool, never on an actix worker.

pub mod activity;
pub mod agents;
pub mod approvals;
pub mod backup;
pub mod batcher;
pub mod canvas;
pub mod connection;
pub mod events;
pub mod idempotency;
pub mod keys;
pub mod leases;
pub mod schema;
pub mod secrets;
pub mod sql_types;
pub mod tokens;
pub mod workspaces;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::Pool;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use connection::{DatabaseUrl, DbConnection};

use crate::domain::people::Actor;
pub use events::{LiveEvent, NewEvent};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Advisory lock keys (PostgreSQL). Arbitrary constants, fixed forever: every instance of every
/// version must agree on them.
const MIGRATION_LOCK_KEY: i64 = 0x63616e6f70790001; // "canopy" 1
/// The PostgreSQL advisory lock every event-appending transaction takes (`"canopy"` 2), so
/// commit order equals seq order (DESIGN invariant 2). Public so a test can hold it.
pub const STREAM_LOCK_KEY: i64 = 0x63616e6f70790002;

/// How long a request waits for a pooled connection before it is answered 503.
const POOL_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[from] diesel::r2d2::PoolError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("blocking task failed: {0}")]
    Join(String),
    /// The batch a command was group-committed in failed (or never reached the database).
    #[error("{message}")]
    Batch { unavailable: bool, message: String },
    /// A lone command in a group commit was refused; its own error is what the caller sees.
    #[error("command refused")]
    Refused,
}

impl StoreError {
    /// Whether the database could not take the work now (locked past its busy timeout, or the
    /// connection was lost): the caller answers 503 with `Retry-After`, not 500.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Query(e) => is_busy(e),
            StoreError::Batch { unavailable, .. } => *unavailable,
            _ => false,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            StoreError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Whether a query failed because the database is busy or gone rather than because of the
/// query: SQLite `SQLITE_BUSY`/`SQLITE_LOCKED` past `busy_timeout` ("database is locked"),
/// PostgreSQL lock or statement timeouts (SQLSTATE 55P03, 57014), or a lost connection.
pub fn is_busy(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked")
                || message.contains("database table is locked")
                || message.contains("lock timeout")
                || message.contains("statement timeout")
        }
        _ => false,
    }
}

#[derive(Clone)]
pub struct Store {
    pool: Pool<connection::DbManager>,
    url: DatabaseUrl,
}

impl Store {
    /// Builds the pool without connecting: a database that is down at start-up is reported by
    /// the first use (migrations), not hidden behind a generic pool error.
    pub fn open(url: DatabaseUrl, max_connections: u32) -> Store {
        Store::open_with_busy_timeout(url, max_connections, connection::DEFAULT_BUSY_TIMEOUT)
    }

    /// [`Store::open`] with how long a statement may wait for a lock before it fails
    /// ([`is_busy`]).
    pub fn open_with_busy_timeout(
        url: DatabaseUrl,
        max_connections: u32,
        busy_timeout: Duration,
    ) -> Store {
        let pool = Pool::builder()
            .max_size(max_connections)
            .min_idle(Some(1))
            .connection_timeout(POOL_CHECKOUT_TIMEOUT)
            .idle_timeout(Some(Duration::from_secs(300)))
            .build_unchecked(connection::DbManager::new(url.clone(), busy_timeout));
        Store { pool, url }
    }

    pub fn backend_name(&self) -> &'static str {
        self.url.backend_name()
    }

    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    pub(crate) fn checkout(
        &self,
    ) -> Result<diesel::r2d2::PooledConnection<connection::DbManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Applies pending migrations. On PostgreSQL several instances may start at once, so the
    /// run is serialized by a session advisory lock: the first migrates, the rest find nothing
    /// to do.
    pub fn migrate_blocking(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.checkout()?;
        let applied = match &mut *conn {
            DbConnection::Postgres(c) => {
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                    .execute(c)?;
                let result = c
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>());
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                    .execute(c)?;
                result
            }
            // SQLite: the write lock, taken up front, does what the advisory lock does above
            // (a second instance waits on busy_timeout, then finds nothing pending).
            DbConnection::Sqlite(c) => c.immediate_transaction(|c| {
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>())
            }),
        };
        applied.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.checkout()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Runs `f` in one write transaction that may append events, on the blocking pool. Returns
    /// `f`'s value and the events that committed with it, in seq order; nothing is returned for
    /// a transaction that rolled back.
    pub async fn transact<T, E, F>(&self, f: F) -> Result<(T, Vec<LiveEvent>), E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.transact_blocking(f))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    pub fn transact_blocking<T, E, F>(&self, f: F) -> Result<(T, Vec<LiveEvent>), E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        let mut conn = self.checkout()?;
        with_write_transaction(&mut conn, f)
    }

    /// A cheap round trip, for the health check: answers within the pool's checkout timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.pool.get_timeout(Duration::from_secs(2))?;
            conn.batch_execute("SELECT 1")?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }
}

/// The write transaction behind [`Store::transact`]; exposed for callers that already hold a
/// connection (the CLI, tests).
pub fn with_write_transaction<T, E, F>(
    conn: &mut DbConnection,
    f: F,
) -> Result<(T, Vec<LiveEvent>), E>
where
    E: From<StoreError>,
    F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
{
    connection::begin_write_transaction(conn).map_err(StoreError::from)?;
    let mut tx = Tx {
        conn,
        events: Vec::new(),
        stream_locked: false,
        versions: Default::default(),
        actor: Actor::system("system"),
    };
    match f(&mut tx) {
        Ok(value) => {
            let events = std::mem::take(&mut tx.events);
            connection::commit_transaction(tx.conn).map_err(StoreError::from)?;
            Ok((value, events))
        }
        Err(err) => {
            // The original error is what the caller needs; a failed rollback leaves the
            // connection broken, and r2d2 discards it on return (`has_broken`).
            if let Err(rollback) = connection::rollback_transaction(tx.conn) {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}

/// A write transaction in progress. Events appended here commit with the state change or not
/// at all (DESIGN.md invariant 1).
pub struct Tx<'c> {
    pub(crate) conn: &'c mut DbConnection,
    pub(crate) events: Vec<LiveEvent>,
    stream_locked: bool,
    /// Workspaces whose version the current command already bumped, with the new version: one
    /// command is one change, however many events it appends about a workspace.
    versions: std::collections::HashMap<uuid::Uuid, i64>,
    /// Who the running command acts for: stamped on every event it appends (Canopy itself
    /// unless the caller says otherwise, see `AppState::execute_as`).
    actor: Actor,
}

impl Tx<'_> {
    pub fn conn(&mut self) -> &mut DbConnection {
        self.conn
    }

    /// Takes the stream lock: from here until commit this transaction is the only one that can
    /// append, so commit order equals seq order (invariant 2). Commands that will append call
    /// this before touching rows, so two event-producing transactions never wait on each
    /// other's row locks while holding the stream lock (no deadlock). SQLite's `BEGIN IMMEDIATE`
    /// already serialized every writer.
    pub fn lock_stream(&mut self) -> QueryResult<()> {
        if !self.stream_locked {
            if let DbConnection::Postgres(c) = &mut *self.conn {
                diesel::sql_query(format!("SELECT pg_advisory_xact_lock({STREAM_LOCK_KEY})"))
                    .execute(c)?;
            }
            self.stream_locked = true;
        }
        Ok(())
    }

    /// Marks where the next command of a shared (group-committed) transaction begins: its
    /// version bumps are its own.
    pub(crate) fn begin_command(&mut self) {
        self.versions.clear();
    }

    /// Who the running command acts for.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Sets who the running command acts for; returns who it was (to restore afterwards: a
    /// group commit runs several people's commands in one transaction).
    pub fn set_actor(&mut self, actor: Actor) -> Actor {
        std::mem::replace(&mut self.actor, actor)
    }

    /// Appends an event to `live_events` (and `structure_events` for structural kinds),
    /// assigning the next seq and stamping the current actor. An event about a workspace
    /// carries the workspace's version in `payload.version`; a kind that changes the workspace
    /// bumps it first (once per command).
    pub fn append(&mut self, mut event: NewEvent) -> QueryResult<LiveEvent> {
        self.lock_stream()?;
        if let Some(id) = event.workspace_id {
            let version = match self.versions.get(&id) {
                Some(bumped) => Some(*bumped),
                None if event.kind.changes_workspace() => {
                    let bumped = workspaces::bump_version(self.conn, id)?;
                    if let Some(v) = bumped {
                        self.versions.insert(id, v);
                    }
                    bumped
                }
                None => workspaces::version(self.conn, id)?,
            };
            if let (Some(version), Some(payload)) = (version, event.payload.as_object_mut()) {
                payload.insert("version".into(), version.into());
            }
        }
        let live = events::append(self.conn, event, &self.actor)?;
        self.events.push(live.clone());
        Ok(live)
    }

    pub fn appended(&self) -> &[LiveEvent] {
        &self.events
    }
}
