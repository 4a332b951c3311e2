//! Group commit: concurrent write commands of one instance run in a single transaction, with
//! one stream lock, one COMMIT and one publish for the whole batch.
//!
//! Every event-producing transaction holds the stream lock until it commits, so the stream
//! carries one transaction at a time. Taking the lock, the round trips and the commit once per
//! batch instead of once per drag is what lets a drag storm through. Each command runs in its
//! own savepoint (when the batch has more than one), so a refused command rolls back only
//! itself; a failed COMMIT fails every command of the batch — none of them happened.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc as std_mpsc;

use diesel::connection::SimpleConnection;
use tokio::sync::{mpsc, oneshot};

use super::{DbConnection, LiveEvent, Store, StoreError, Tx};

/// Largest batch: bounds how long one COMMIT makes the first command of a batch wait.
const MAX_BATCH: usize = 128;

/// A command waiting to run in a batch.
trait Job: Send {
    /// Runs the command; returns whether it succeeded (its changes stay in the batch).
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Reports the outcome: the command's own committed events, or why the batch failed.
    fn finish(self: Box<Self>, batch: Result<Vec<LiveEvent>, StoreError>);
}

struct CommandJob<T, E, F> {
    command: Option<F>,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<(T, Vec<LiveEvent>), E>>,
}

impl<T, E, F> Job for CommandJob<T, E, F>
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

#[derive(Clone)]
pub struct GroupCommitter {
    queue: std_mpsc::Sender<Box<dyn Job>>,
}

impl GroupCommitter {
    /// Starts the committer thread. Committed events of each batch go to `published`, in seq
    /// order, for the Backplane.
    pub fn start(store: Store, published: mpsc::UnboundedSender<Vec<LiveEvent>>) -> GroupCommitter {
        let (queue, jobs) = std_mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("canopy-committer".into())
            .spawn(move || {
                while let Ok(first) = jobs.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match jobs.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    metrics::histogram!("canopy_group_commit_batch_size")
                        .record(batch.len() as f64);
                    run_batch(&store, batch, &published);
                }
            })
            .expect("spawning the committer thread");
        GroupCommitter { queue }
    }

    /// Queues a command and waits for its batch to commit.
    pub async fn execute<T, E, F>(&self, command: F) -> Result<(T, Vec<LiveEvent>), E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = CommandJob {
            command: Some(command),
            outcome: None,
            reply,
        };
        self.queue
            .send(Box::new(job))
            .map_err(|_| StoreError::Join("committer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Join("committer dropped a command".into()))?
    }
}

fn run_batch(
    store: &Store,
    mut batch: Vec<Box<dyn Job>>,
    published: &mpsc::UnboundedSender<Vec<LiveEvent>>,
) {
    let mut conn = match store.checkout() {
        Ok(conn) => conn,
        Err(e) => {
            let message = e.to_string();
            for job in batch {
                job.finish(Err(StoreError::Batch {
                    unavailable: true,
                    message: message.clone(),
                }));
            }
            return;
        }
    };
    match run_in_transaction(&mut conn, &mut batch) {
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
fn run_in_transaction(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Job>],
) -> Result<(Vec<LiveEvent>, Vec<Option<(usize, usize)>>), StoreError> {
    let single = batch.len() == 1;
    let (ranges, events) = super::with_write_transaction(conn, |tx: &mut Tx<'_>| {
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
