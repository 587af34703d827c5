//! The shared backend: PostgreSQL, one database for several Switchboard nodes.
//!
//! - **Connections** come from a small pool; a job runs on the blocking thread pool with
//!   a connection of its own, so no async task holds one.
//! - **A write is one transaction** (`BEGIN … COMMIT`); PostgreSQL groups the WAL
//!   flushes of transactions committing at once, which is the group commit the SQLite
//!   backend does by hand. A transaction that loses a race to another node (a
//!   serialization failure, a deadlock, a unique key taken meanwhile) is rolled back and
//!   its job runs again: jobs only write through their [`Db`], so a second run sees what
//!   the winner committed.
//! - **What must not interleave across nodes** (appending events, leasing) takes a
//!   transaction-level advisory lock ([`Serial`]).
//! - **Migrations** run at start-up under a session-level advisory lock, so nodes
//!   starting together apply each version once.
//! - Leases of other nodes are never taken over at start-up: a dead node's leases
//!   expire and the sweep queues them again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};
use switchboard_core::Timestamp;
use switchboard_telemetry::Metrics;
use tokio::sync::Semaphore;

use crate::StoreError;
use crate::cluster::{Cluster, Signal};
use crate::sql::{Backend, Db, Idle, Read, Row, Serial, SqlStore, Value};

mod import;
mod listener;

pub use import::Copied;

/// The schema, one entry per version; a version once released is never edited.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("schema.sql"))];

/// The first key of every advisory lock Switchboard takes: its schema's, so that stores
/// in other schemas of the database never wait for each other. The second names the lock.
const LOCK_SPACE: &str = "hashtext('switchboard.' || current_schema())";

/// The advisory lock held while migrating.
const MIGRATION_LOCK: i32 = 0;

/// The session advisory lock the leading node holds.
const LEADER_LOCK: i32 = 3;

/// The channel signals travel on, also the schema's own.
const CHANNEL: &str = "'switchboard.' || current_schema()";

/// How many connections a node opens at most.
const POOL_SIZE: usize = 16;

/// How often a job that lost a race to another node runs again before it fails.
const MAX_RUNS: u32 = 8;

/// The [`Store`](crate::Store) on PostgreSQL.
pub type PostgresStore = SqlStore<Postgres>;

/// The PostgreSQL backend: its pool of connections, and the listener that hears the
/// other nodes.
pub struct Postgres {
    pool: Arc<Pool>,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    cluster: Cluster,
    /// Tells the listener to stop when the store goes.
    _listening: listener::Running,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or
    /// libpq's `key=value` form), bringing its schema up to date. Each commit is reported
    /// to `metrics`. Blocks while it connects and migrates.
    pub fn connect(url: &str, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|error: postgres::Error| StoreError::Connect(error.to_string()))?;
        let pool = Arc::new(Pool {
            config,
            idle: Idle::new(),
        });
        let connection = pool.take()?;
        migrate(&connection)?;
        pool.give_back(connection);
        let (cluster, listening) = listener::start(pool.config.clone())?;
        Ok(Self {
            backend: Postgres {
                pool,
                permits: Arc::new(Semaphore::new(POOL_SIZE)),
                metrics,
                cluster,
                _listening: listening,
            },
        })
    }
}

impl Backend for Postgres {
    fn write<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: Fn(&dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        let metrics = Arc::clone(&self.metrics);
        self.run(move |connection| {
            let started = Instant::now();
            let result = transaction(connection, &work);
            if result.is_ok() {
                metrics.store_committed(1, started.elapsed());
            }
            result
        })
    }

    fn read<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |connection| work(connection))
    }

    fn cluster(&self) -> Option<Cluster> {
        Some(self.cluster.clone())
    }

    fn sole_process(&self) -> bool {
        false
    }
}

impl Postgres {
    /// Runs `job` on a pooled connection on the blocking thread pool.
    fn run<T, F>(&self, job: F) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(&self.pool);
        let permits = Arc::clone(&self.permits);
        async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|_| StoreError::Closed)?;
            tokio::task::spawn_blocking(move || {
                let connection = pool.take()?;
                let result = job(&connection);
                pool.give_back(connection);
                result
            })
            .await
            .map_err(|_| StoreError::Closed)?
        }
    }
}

/// Runs `work` in a transaction, again when it lost a race to another node.
fn transaction<T>(
    connection: &Connection,
    work: &dyn Fn(&dyn Db) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut run = 1;
    loop {
        connection.batch("BEGIN")?;
        connection.announced.borrow_mut().clear();
        let result = work(connection).and_then(|value| {
            connection.notify_announced()?;
            connection.batch("COMMIT")?;
            Ok(value)
        });
        match result {
            Ok(value) => return Ok(value),
            Err(error) => {
                // After a failed COMMIT the transaction is gone already.
                let _ = connection.batch("ROLLBACK");
                if run >= MAX_RUNS || !lost_a_race(&error) {
                    return Err(error);
                }
                tracing::debug!(run, %error, "A store transaction lost a race; running it again.");
                std::thread::sleep(Duration::from_millis(u64::from(run) * 5));
                run += 1;
            }
        }
    }
}

/// Whether a transaction failed only because another one committed first: running it
/// again sees that commit and can succeed.
fn lost_a_race(error: &StoreError) -> bool {
    let StoreError::Postgres(error) = error else {
        return false;
    };
    error.code().is_some_and(|code| {
        [
            postgres::error::SqlState::T_R_SERIALIZATION_FAILURE,
            postgres::error::SqlState::T_R_DEADLOCK_DETECTED,
            postgres::error::SqlState::UNIQUE_VIOLATION,
        ]
        .contains(code)
    })
}

fn migrate(connection: &Connection) -> Result<(), StoreError> {
    connection.batch(&format!(
        "SELECT pg_advisory_lock({LOCK_SPACE}, {MIGRATION_LOCK})"
    ))?;
    let migrated = apply_migrations(connection);
    let unlocked = connection.batch(&format!(
        "SELECT pg_advisory_unlock({LOCK_SPACE}, {MIGRATION_LOCK})"
    ));
    migrated.and(unlocked)
}

fn apply_migrations(connection: &Connection) -> Result<(), StoreError> {
    connection.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )?;
    let db: &dyn Db = connection;
    for (version, sql) in MIGRATIONS {
        let applied = db
            .row(
                "SELECT 1 FROM schema_migrations WHERE version = ?1",
                &[Value::Int(*version)],
                |_| Ok(()),
            )?
            .is_some();
        if !applied {
            transaction(connection, &|db| {
                connection.batch(sql)?;
                db.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                    &[Value::Int(*version), Value::Int(Timestamp::now().millis())],
                )?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// Idle connections, reused across jobs.
struct Pool {
    config: postgres::Config,
    idle: Idle<Connection>,
}

impl Pool {
    /// An idle connection, or a new one.
    fn take(&self) -> Result<Connection, StoreError> {
        self.idle.take(|| {
            Ok(Connection {
                client: RefCell::new(
                    self.config
                        .connect(NoTls)
                        .map_err(|error| StoreError::Connect(error.to_string()))?,
                ),
                statements: RefCell::new(HashMap::new()),
                announced: RefCell::new(Vec::new()),
            })
        })
    }

    /// Keeps `connection` for the next job, unless it broke.
    fn give_back(&self, connection: Connection) {
        if !connection.client.borrow().is_closed() {
            self.idle.give_back(connection);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // A synchronous client owns a runtime of its own, which may not be dropped inside
        // an async task (where the store's last owner may drop it): close them apart.
        let idle = self.idle.drain();
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name(String::from("store-close"))
                .spawn(move || drop(idle));
        }
    }
}

/// A connection with the statements it has prepared, by their SQL as written.
struct Connection {
    client: RefCell<Client>,
    statements: RefCell<HashMap<String, Statement>>,
    /// What the transaction running on it announces when it commits.
    announced: RefCell<Vec<Signal>>,
}

impl Connection {
    /// Sends the transaction's signals; PostgreSQL delivers them when it commits.
    fn notify_announced(&self) -> Result<(), StoreError> {
        let announced = std::mem::take(&mut *self.announced.borrow_mut());
        for signal in announced {
            self.batch(&format!(
                "SELECT pg_notify({CHANNEL}, '{}')",
                signal.as_str()
            ))?;
        }
        Ok(())
    }

    /// Runs statements that take no parameters.
    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        Ok(self.client.borrow_mut().batch_execute(sql)?)
    }

    /// The prepared statement of `sql` (in the shared dialect).
    fn statement(&self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.borrow_mut().prepare(&postgres_sql(sql))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// `sql` as PostgreSQL takes it: `?N` parameters become `$N`, and SQLite's `INDEXED BY
/// index` hints go.
fn postgres_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(['?', 'I']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix('?') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("INDEXED BY ") {
            let name_ends = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            rest = &after[name_ends..];
        } else {
            out.push('I');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

impl Db for Connection {
    fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|arg| arg as _).collect();
        Ok(self.client.borrow_mut().execute(&statement, &params)?)
    }

    fn query(
        &self,
        sql: &str,
        args: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<Read, StoreError>,
    ) -> Result<(), StoreError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|arg| arg as _).collect();
        let rows = self.client.borrow_mut().query(&statement, &params)?;
        for row in &rows {
            if each(row)? == Read::Enough {
                break;
            }
        }
        Ok(())
    }

    fn serialize(&self, serial: Serial) -> Result<(), StoreError> {
        self.batch(&format!(
            "SELECT pg_advisory_xact_lock({LOCK_SPACE}, {})",
            serial as i32
        ))
    }

    fn announce(&self, signal: Signal) {
        let mut announced = self.announced.borrow_mut();
        if !announced.contains(&signal) {
            announced.push(signal);
        }
    }
}

impl Row for postgres::Row {
    fn opt_int(&self, column: usize) -> Result<Option<i64>, StoreError> {
        let Some(described) = self.columns().get(column) else {
            return Err(StoreError::Corrupt(format!("no column {column}")));
        };
        Ok(match *described.type_() {
            Type::INT8 => self.try_get::<_, Option<i64>>(column)?,
            Type::INT4 => self.try_get::<_, Option<i32>>(column)?.map(i64::from),
            Type::INT2 => self.try_get::<_, Option<i16>>(column)?.map(i64::from),
            Type::BOOL => self.try_get::<_, Option<bool>>(column)?.map(i64::from),
            ref other => {
                return Err(StoreError::Corrupt(format!(
                    "column {column} is {other}, not an integer"
                )));
            }
        })
    }

    fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Text(text) => text.as_ref().to_sql(ty, out),
            Self::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                Type::BOOL => (*value != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => value.to_string().to_sql(ty, out),
                ref other => {
                    Err(format!("an integer cannot be bound to a {other} parameter").into())
                }
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::postgres_sql;

    #[test]
    fn shared_sql_is_rewritten_for_postgres() {
        assert_eq!(
            postgres_sql(
                "SELECT min(run_at) FROM executions INDEXED BY executions_runnable WHERE id = ?1 AND n IN (?2, ?12)"
            ),
            "SELECT min(run_at) FROM executions  WHERE id = $1 AND n IN ($2, $12)"
        );
        assert_eq!(
            postgres_sql("INSERT INTO t VALUES (?1)"),
            "INSERT INTO t VALUES ($1)"
        );
    }
}
