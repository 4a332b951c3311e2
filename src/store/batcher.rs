//! The write batcher: concurrent writes of one instance share a pool checkout, a statement or a
//! transaction, and a COMMIT. One engine with two lanes, each a queue drained by its own
//! threads with the same gather loop (wait for a job, then take whatever else is queued, up to
//! [`MAX_BATCH`]):
//!
//! - **commands** (one thread): writes that append events. The batch is one transaction that
//!   takes the stream lock, runs each command in its own savepoint (when there is more than
//!   one), so a refused command rolls back only itself, and commits once; its events go to the
//!   Backplane in seq order (one thread: publish order is commit order). A failed COMMIT fails
//!   every command of the batch — none of them happened. Taking the lock, the round trips and
//!   the commit once per batch instead of once per drag is what lets a drag storm through.
//! - **heartbeats** (two threads: one can wait on a statement while the other fills the next
//!   batch): quiet heartbeats, which append no event and never take the stream lock. The whole
//!   batch is ONE guarded multi-row `UPDATE … FROM (VALUES …) … RETURNING id`
//!   ([`workspaces::record_quiet_heartbeats`]) in autocommit: one round trip and one WAL flush
//!   for up to [`MAX_BATCH`] agents, so a thousand agents heartbeating cost a few statements
//!   instead of a thousand. A heartbeat the statement did not apply (its status or task
//!   changes, or it is not proven) or a batch that failed answers `false`, and its caller takes
//!   the ordinary path, where a real error is reported to the client.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use diesel::connection::SimpleConnection;
use diesel::QueryResult;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::workspaces::{self, QuietBeat};
use super::{DbConnection, LiveEvent, Store, StoreError, Tx};

/// Largest batch of either lane: bounds how long the first job of a batch waits for the
/// statement or COMMIT that carries it.
const MAX_BATCH: usize = 256;
/// Threads draining the heartbeat lane.
const HEARTBEAT_THREADS: usize = 2;

/// Checks, on the batch's connection, that a heartbeat comes from its workspace's agent (a
/// token lookup the caller could not answer from memory). `false`: not proven here; the
/// caller's ordinary path decides.
pub type Proof = Box<dyn FnOnce(&mut DbConnection) -> QueryResult<bool> + Send>;

/// One batcher for the instance's writes (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    commands: std_mpsc::Sender<Box<dyn CommandJob>>,
    heartbeats: std_mpsc::Sender<HeartbeatJob>,
}

impl Batcher {
    /// Starts both lanes. Committed events of each command batch go to `published`, in seq
    /// order, for the Backplane.
    pub fn start(store: Store, published: mpsc::UnboundedSender<Vec<LiveEvent>>) -> Batcher {
        let command_store = store.clone();
        let commands = spawn_lane("canopy-committer", 1, move |batch| {
            metrics::histogram!("canopy_group_commit_batch_size").record(batch.len() as f64);
            run_commands(&command_store, batch, &published);
        });
        let heartbeats = spawn_lane("canopy-heartbeats", HEARTBEAT_THREADS, move |batch| {
            metrics::histogram!("canopy_write_batch_size").record(batch.len() as f64);
            run_heartbeats(&store, batch);
        });
        Batcher {
            commands,
            heartbeats,
        }
    }

    /// Queues a command (a write that may append events) and waits for its batch to commit.
    /// Returns the command's value and the events it appended, or the command's own error, or
    /// (`StoreError::Batch`) why its batch failed.
    pub async fn execute<T, E, F>(&self, command: F) -> Result<(T, Vec<LiveEvent>), E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Command {
            command: Some(command),
            outcome: None,
            reply,
        };
        self.commands
            .send(Box::new(job))
            .map_err(|_| StoreError::Join("committer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Join("committer dropped a command".into()))?
    }

    /// Writes a quiet heartbeat in the next heartbeat batch, if `beat.quiet` holds for its
    /// workspace's status and its task is unchanged. `proof`: a token check to run first on
    /// the batch's connection (`None`: the caller already proved the agent). `true`: written;
    /// `false`: nothing of it happened (not quiet, not proven, or the batch failed), and the
    /// caller takes its ordinary path.
    pub async fn heartbeat(&self, beat: QuietBeat, proof: Option<Proof>) -> bool {
        let (reply, answer) = oneshot::channel();
        let job = HeartbeatJob { beat, proof, reply };
        if self.heartbeats.send(job).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

/// Starts `threads` threads that drain one queue in batches and hand each batch to `run`.
fn spawn_lane<J, R>(name: &str, threads: usize, run: R) -> std_mpsc::Sender<J>
where
    J: Send + 'static,
    R: Fn(Vec<J>) + Send + Sync + 'static,
{
    let (queue, jobs) = std_mpsc::channel::<J>();
    let jobs = Arc::new(Mutex::new(jobs));
    let run = Arc::new(run);
    for n in 0..threads {
        let (jobs, run) = (Arc::clone(&jobs), Arc::clone(&run));
        std::thread::Builder::new()
            .name(format!("{name}-{n}"))
            .spawn(move || {
                while let Some(batch) = next_batch(&jobs) {
                    run(batch);
                }
            })
            .expect("spawning a batcher thread");
    }
    queue
}

/// Waits for a job, then takes whatever else is queued. `None` when every sender is gone.
fn next_batch<J>(jobs: &Mutex<std_mpsc::Receiver<J>>) -> Option<Vec<J>> {
    let jobs = jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut batch = vec![jobs.recv().ok()?];
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

// ---------------------------------------------------------------------------------------------
// The command lane

/// A command waiting to run in a batch.
trait CommandJob: Send {
    /// Runs the command; returns whether it succeeded (its changes stay in the batch).
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Reports the outcome: the command's own committed events, or why the batch failed.
    fn finish(self: Box<Self>, batch: Result<Vec<LiveEvent>, StoreError>);
}

struct Command<T, E, F> {
    command: Option<F>,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<(T, Vec<LiveEvent>), E>>,
}

impl<T, E, F> CommandJob for Command<T, E, F>
where
    T: Send,
    E: From<StoreError> + Send,
    F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> bool {
        let command = self.command.take().expect("a job runs once");
        let outcome = catch_unwind(AssertUnwindSafe(|| command(tx)))
            .unwrap_or_else(|_| Err(StoreError::Join("command panicked".into()).into()));
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, batch: Result<Vec<LiveEvent>, StoreError>) {
        let answer = match (self.outcome, batch) {
            (Some(Ok(value)), Ok(events)) => Ok((value, events)),
            (Some(Err(refused)), _) => Err(refused),
            (_, Err(failed)) => Err(failed.into()),
            (None, Ok(_)) => Err(StoreError::Join("job finished without running".into()).into()),
        };
        let _ = self.reply.send(answer); // the caller may have gone away
    }
}

fn run_commands(
    store: &Store,
    mut batch: Vec<Box<dyn CommandJob>>,
    published: &mpsc::UnboundedSender<Vec<LiveEvent>>,
) {
    let outcome = store
        .checkout()
        .and_then(|mut conn| commands_in_transaction(&mut conn, &mut batch));
    match outcome {
        Ok((events, ranges)) => {
            if !events.is_empty() {
                let _ = published.send(events.clone());
            }
            for (job, range) in batch.into_iter().zip(ranges) {
                let own = range
                    .map(|(start, end)| events[start..end].to_vec())
                    .unwrap_or_default();
                job.finish(Ok(own));
            }
        }
        Err(e) => {
            let message = e.to_string();
            let unavailable = e.is_busy();
            tracing::error!(error = %message, size = batch.len(), unavailable, "group commit failed; every command of the batch is refused");
            for job in batch {
                job.finish(Err(StoreError::Batch {
                    unavailable,
                    message: message.clone(),
                }));
            }
        }
    }
}

/// Runs the batch in one transaction. For each job: the slice of the batch's events it
/// appended, or `None` if it was refused (and rolled back to its savepoint).
#[allow(clippy::type_complexity)]
fn commands_in_transaction(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn CommandJob>],
) -> Result<(Vec<LiveEvent>, Vec<Option<(usize, usize)>>), StoreError> {
    let single = batch.len() == 1;
    let (ranges, events) = super::with_write_transaction(conn, |tx: &mut Tx<'_>| {
        // Every job of this lane may append; taking the lock before any of them touches a row
        // means no transaction ever waits on row locks while holding it (no deadlock).
        tx.lock_stream()?;
        let mut ranges = Vec::with_capacity(batch.len());
        for job in batch.iter_mut() {
            let start = tx.events.len();
            tx.begin_command();
            if !single {
                tx.conn.batch_execute("SAVEPOINT canopy_job")?;
            }
            if job.run(tx) {
                if !single {
                    tx.conn.batch_execute("RELEASE SAVEPOINT canopy_job")?;
                }
                ranges.push(Some((start, tx.events.len())));
            } else if single {
                // Nothing else in the transaction: roll it all back.
                return Err(StoreError::Refused);
            } else {
                tx.conn.batch_execute(
                    "ROLLBACK TO SAVEPOINT canopy_job; RELEASE SAVEPOINT canopy_job",
                )?;
                tx.events.truncate(start);
                ranges.push(None);
            }
        }
        Ok::<_, StoreError>(ranges)
    })
    .or_else(|e| match e {
        // A lone refused command: its own outcome says why.
        StoreError::Refused => Ok((vec![None], Vec::new())),
        other => Err(other),
    })?;
    Ok((events, ranges))
}

// ---------------------------------------------------------------------------------------------
// The heartbeat lane

struct HeartbeatJob {
    beat: QuietBeat,
    proof: Option<Proof>,
    reply: oneshot::Sender<bool>,
}

fn run_heartbeats(store: &Store, mut batch: Vec<HeartbeatJob>) {
    let written = store
        .checkout()
        .map_err(|e| e.to_string())
        .and_then(|mut conn| heartbeat_statement(&mut conn, &mut batch).map_err(|e| e.to_string()));
    let written = written.unwrap_or_else(|error| {
        tracing::warn!(%error, size = batch.len(), "heartbeat batch failed; its heartbeats take the unbatched path");
        vec![false; batch.len()]
    });
    for (job, written) in batch.into_iter().zip(written) {
        let _ = job.reply.send(written);
    }
}

/// Runs the batch's token checks, then one statement for every proven heartbeat. Returns, per
/// job, whether its heartbeat was written. A workspace that appears twice in a batch is
/// written once, by its first heartbeat; the later one answers `false` and takes the
/// ordinary path.
fn heartbeat_statement(
    conn: &mut DbConnection,
    batch: &mut [HeartbeatJob],
) -> QueryResult<Vec<bool>> {
    let mut candidates: Vec<Option<Uuid>> = Vec::with_capacity(batch.len());
    let mut seen = HashSet::with_capacity(batch.len());
    for job in batch.iter_mut() {
        let proven = match job.proof.take() {
            None => true,
            Some(proof) => catch_unwind(AssertUnwindSafe(|| proof(conn))).unwrap_or(Ok(false))?,
        };
        let id = job.beat.workspace_id;
        candidates.push((proven && seen.insert(id)).then_some(id));
    }
    let beats: Vec<&QuietBeat> = batch
        .iter()
        .zip(&candidates)
        .filter(|(_, c)| c.is_some())
        .map(|(job, _)| &job.beat)
        .collect();
    if beats.is_empty() {
        return Ok(vec![false; batch.len()]);
    }
    let written: HashSet<Uuid> = workspaces::record_quiet_heartbeats(conn, &beats, Utc::now())?
        .into_iter()
        .collect();
    Ok(candidates
        .into_iter()
        .map(|c| c.is_some_and(|id| written.contains(&id)))
        .collect())
}
