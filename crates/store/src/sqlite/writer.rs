//! The writer thread: every write of the store, batched into group commits.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;
use switchboard_telemetry::Metrics;
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::sql::Db;

/// The most jobs one transaction takes.
const MAX_BATCH: usize = 512;

/// One unit of writing in a batch.
trait Job: Send {
    /// Runs inside the batch transaction; returns whether it failed. It may run twice:
    /// when a job of the batch fails, the transaction is rolled back and every job runs
    /// again, each in a savepoint.
    fn run(&mut self, connection: &Connection) -> bool;

    /// Tells the caller the outcome, once the batch's commit is done (or impossible).
    fn complete(self: Box<Self>, batch: Result<(), String>);
}

/// A job that computes a `T` and sends it to its caller.
struct TypedJob<T, F> {
    work: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: Fn(&dyn Db) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let result = (self.work)(connection);
        let failed = result.is_err();
        self.result = Some(result);
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
        F: Fn(&dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            work,
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

/// Commits the batch: first all its jobs in one plain transaction; if one of them fails,
/// that is rolled back and the batch runs again with a savepoint per job, so the failed
/// one's writes go and the others' stay.
///
/// The plain first pass is the common case and the cheap one: inside a savepoint SQLite
/// copies every page a job changes to a statement journal, which took a sixth of the
/// writer's time while it ran executions (bench/README.md).
fn commit_batch(connection: &Connection, batch: &mut Vec<Box<dyn Job>>) {
    if let Err(message) = begin(connection) {
        for job in batch.drain(..) {
            job.complete(Err(message.clone()));
        }
        return;
    }
    if batch.iter_mut().any(|job| job.run(connection)) {
        if let Err(error) = connection.execute_batch("ROLLBACK") {
            tracing::error!(%error, "Store rollback failed.");
        }
        if let Err(message) = begin(connection) {
            for job in batch.drain(..) {
                job.complete(Err(message.clone()));
            }
            return;
        }
        run_in_savepoints(connection, batch);
    }
    let committed = connection.execute_batch("COMMIT").map_err(|error| {
        let _ = connection.execute_batch("ROLLBACK");
        error.to_string()
    });
    for job in batch.drain(..) {
        job.complete(committed.clone());
    }
}

fn begin(connection: &Connection) -> Result<(), String> {
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(|error| format!("cannot begin a transaction: {error}"))
}

/// Runs each job in a savepoint of its own, rolled back when the job fails.
fn run_in_savepoints(connection: &Connection, batch: &mut [Box<dyn Job>]) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::args;

    fn rows(db: &dyn Db) -> Result<Vec<i64>, StoreError> {
        db.rows("SELECT n FROM t ORDER BY n", args![], |row| row.int(0))
    }

    #[tokio::test]
    async fn a_failed_job_loses_its_own_writes_and_no_other() {
        let folder = tempfile::tempdir().unwrap();
        let connection = Connection::open(folder.path().join("t.db")).unwrap();
        connection
            .execute_batch("CREATE TABLE t (n INTEGER)")
            .unwrap();
        let writer = Writer::start(connection, Arc::default()).unwrap();
        // The first job holds the writer while the next three queue up, so that they
        // are committed as one batch.
        let hold = writer.write(|_| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            Ok(())
        });
        let insert = |n: i64, fail: bool| {
            writer.write(move |db| {
                db.execute("INSERT INTO t (n) VALUES (?1)", args![n])?;
                if fail {
                    return Err(StoreError::Corrupt(format!("job {n} fails")));
                }
                Ok(n)
            })
        };
        let (held, first, failed, last) =
            tokio::join!(hold, insert(1, false), insert(2, true), insert(3, false));
        held.unwrap();
        assert_eq!(first.unwrap(), 1);
        assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
        assert_eq!(last.unwrap(), 3);
        assert_eq!(writer.write(rows).await.unwrap(), [1, 3]);
    }
}
