//! The writer thread: every write of the store, batched into group commits.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;
use switchboard_telemetry::Metrics;
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;

/// The most jobs one transaction takes.
const MAX_BATCH: usize = 512;

/// One unit of writing in a batch.
trait Job: Send {
    /// Runs inside the batch transaction; returns whether it failed (its savepoint is
    /// then rolled back, and the other jobs of the batch are kept).
    fn run(&mut self, connection: &Connection) -> bool;

    /// Tells the caller the outcome, once the batch's commit is done (or impossible).
    fn complete(self: Box<Self>, batch: Result<(), String>);
}

/// A job that computes a `T` and sends it to its caller.
struct TypedJob<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let result = self.work.take().map(|work| work(connection));
        let failed = !matches!(result, Some(Ok(_)));
        self.result = result;
        failed
    }

    fn complete(self: Box<Self>, batch: Result<(), String>) {
        let outcome = match (self.result, batch) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(message)) => Err(StoreError::Commit(message)),
            (None, Ok(())) => Err(StoreError::Closed),
        };
        let _ = self.reply.send(outcome);
    }
}

/// The handle to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `connection`, reporting each commit to `metrics`.
    pub(crate) fn start(connection: Connection, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let (jobs, receiver) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(String::from("store-writer"))
            .spawn(move || run(&connection, receiver, &metrics))
            .map_err(|source| StoreError::DataFolder {
                path: "store-writer thread".into(),
                source,
            })?;
        Ok(Self { jobs })
    }

    /// Runs `work` in the next group commit and answers once that commit is durable.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            work: Some(work),
            result: None,
            reply,
        };
        self.jobs
            .send(Box::new(job))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// The thread's loop: wait for a job, take every other job waiting, commit them as one.
/// It ends when every [`Writer`] handle is dropped.
fn run(
    connection: &Connection,
    mut receiver: mpsc::UnboundedReceiver<Box<dyn Job>>,
    metrics: &Metrics,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let writes = batch.len();
        commit_batch(connection, &mut batch);
        metrics.store_committed(writes, started.elapsed());
    }
}

fn commit_batch(connection: &Connection, batch: &mut Vec<Box<dyn Job>>) {
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        let message = format!("cannot begin a transaction: {error}");
        for job in batch.drain(..) {
            job.complete(Err(message.clone()));
        }
        return;
    }
    for job in batch.iter_mut() {
        let outcome = connection
            .execute_batch("SAVEPOINT job")
            .map(|()| job.run(connection))
            .and_then(|failed| {
                connection.execute_batch(if failed {
                    "ROLLBACK TO job; RELEASE job"
                } else {
                    "RELEASE job"
                })
            });
        if let Err(error) = outcome {
            tracing::error!(%error, "Store savepoint failed.");
        }
    }
    let committed = connection.execute_batch("COMMIT").map_err(|error| {
        let _ = connection.execute_batch("ROLLBACK");
        error.to_string()
    });
    for job in batch.drain(..) {
        job.complete(committed.clone());
    }
}
