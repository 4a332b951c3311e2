//! Batched small writes that append no events (quiet heartbeats): concurrent ones share one
//! pool checkout and one transaction, so a thousand agents heartbeating cost a few COMMITs (on
//! PostgreSQL, a few WAL flushes) instead of a thousand, and no pool validity check each.
//!
//! A batch is all-or-nothing: if any statement fails, or the COMMIT does, the whole batch rolls
//! back and every job answers `None`, which tells its caller to take its ordinary path (where a
//! real error is reported to the client). Jobs must therefore be idempotent on retry and must
//! not need the stream lock; anything that appends events goes through the group committer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use diesel::QueryResult;
use tokio::sync::oneshot;

use super::connection::{begin_write_transaction, commit_transaction, rollback_transaction};
use super::{DbConnection, Store};

/// Largest batch: bounds how long the first job of a batch waits for the COMMIT.
const MAX_BATCH: usize = 256;
/// Threads running batches: one can wait on a COMMIT while the other fills the next batch.
const THREADS: usize = 2;

trait BatchJob: Send {
    fn run(&mut self, conn: &mut DbConnection) -> QueryResult<()>;
    /// `committed`: whether the batch's transaction committed.
    fn finish(self: Box<Self>, committed: bool);
}

struct Job<T, F> {
    work: Option<F>,
    value: Option<T>,
    reply: oneshot::Sender<Option<T>>,
}

impl<T, F> BatchJob for Job<T, F>
where
    T: Send,
    F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send,
{
    fn run(&mut self, conn: &mut DbConnection) -> QueryResult<()> {
        let work = self.work.take().expect("a job runs once");
        let value = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
            Err(diesel::result::Error::QueryBuilderError(
                "batched job panicked".into(),
            ))
        })?;
        self.value = Some(value);
        Ok(())
    }

    fn finish(self: Box<Self>, committed: bool) {
        let _ = self.reply.send(if committed { self.value } else { None });
    }
}

#[derive(Clone)]
pub struct WriteBatcher {
    queue: std_mpsc::Sender<Box<dyn BatchJob>>,
}

impl WriteBatcher {
    pub fn start(store: Store) -> WriteBatcher {
        let (queue, jobs) = std_mpsc::channel::<Box<dyn BatchJob>>();
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..THREADS {
            let (store, jobs) = (store.clone(), Arc::clone(&jobs));
            std::thread::Builder::new()
                .name(format!("canopy-batch-{n}"))
                .spawn(move || {
                    while let Some(batch) = next_batch(&jobs) {
                        metrics::histogram!("canopy_write_batch_size").record(batch.len() as f64);
                        run_batch(&store, batch);
                    }
                })
                .expect("spawning a write-batch thread");
        }
        WriteBatcher { queue }
    }

    /// Runs `work` in the next batch. `None`: the batch did not commit (or the batcher is
    /// gone); nothing of `work` happened, and the caller should take its unbatched path.
    pub async fn run<T, F>(&self, work: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work: Some(work),
            value: None,
            reply,
        };
        self.queue.send(Box::new(job)).ok()?;
        answer.await.ok().flatten()
    }
}

/// Waits for a job, then takes whatever else is queued. `None` when every sender is gone.
fn next_batch(
    jobs: &Mutex<std_mpsc::Receiver<Box<dyn BatchJob>>>,
) -> Option<Vec<Box<dyn BatchJob>>> {
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

fn run_batch(store: &Store, mut batch: Vec<Box<dyn BatchJob>>) {
    let committed = match store.checkout() {
        Ok(mut conn) => match run_in_transaction(&mut conn, &mut batch) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "write batch rolled back; its jobs take the unbatched path");
                false
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, size = batch.len(), "write batch found no connection; its jobs take the unbatched path");
            false
        }
    };
    for job in batch {
        job.finish(committed);
    }
}

fn run_in_transaction(conn: &mut DbConnection, batch: &mut [Box<dyn BatchJob>]) -> QueryResult<()> {
    begin_write_transaction(conn)?;
    let outcome = batch.iter_mut().try_for_each(|job| job.run(conn));
    match outcome {
        Ok(()) => commit_transaction(conn),
        Err(e) => {
            let _ = rollback_transaction(conn);
            Err(e)
        }
    }
}
