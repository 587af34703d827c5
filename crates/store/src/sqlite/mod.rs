//! The embedded backend: SQLite in WAL mode in a data folder.
//!
//! - **One writer thread** owns the write connection. Writes are sent to it as jobs; it
//!   takes every job waiting, runs them in one transaction and commits once: group
//!   commit, one `fsync` for many webhooks (`writer`). A job's caller hears back only
//!   after the commit, so "acknowledged" always means "durable".
//! - **Readers** run on a small pool of read connections on the blocking thread pool;
//!   WAL lets them read while the writer writes.
//! - The data folder is locked for one process, so at start-up every lease left is an
//!   orphan of a process that is gone.

mod writer;

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::config::DbConfig;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use switchboard_core::Timestamp;
use switchboard_telemetry::Metrics;

use crate::StoreError;
use crate::cluster::{Cluster, Signal};
use crate::sql::{Backend, Db, Idle, Read, Row, Serial, SqlStore, Value};
use writer::Writer;

/// The schema, one entry per version; a version once released is never edited.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("schema.sql")),
    (2, include_str!("schema_2.sql")),
    (3, include_str!("schema_3.sql")),
    (4, include_str!("schema_4.sql")),
    (5, include_str!("schema_5.sql")),
    (6, include_str!("schema_6.sql")),
    (7, include_str!("schema_7.sql")),
    (8, include_str!("schema_8.sql")),
    (9, include_str!("schema_9.sql")),
    (10, include_str!("schema_10.sql")),
    (11, include_str!("schema_11.sql")),
    (12, include_str!("schema_12.sql")),
    (13, include_str!("schema_13.sql")),
    (14, include_str!("schema_14.sql")),
    (15, include_str!("schema_15.sql")),
    (16, include_str!("schema_16.sql")),
    (17, include_str!("schema_17.sql")),
    (18, include_str!("schema_18.sql")),
];

/// The database file inside the data folder.
const DATABASE_FILE: &str = "switchboard.db";

/// The lock file that keeps a second process out of the data folder.
const LOCK_FILE: &str = "LOCK";

/// The [`Store`](crate::Store) on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite backend: the writer thread, the read connections and the folder's lock.
pub struct Sqlite {
    writer: Writer,
    readers: Arc<Readers>,
    _lock: File,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `folder`, locking it for this process and
    /// bringing its schema up to date. Every commit is reported to `metrics`.
    pub fn open(folder: &Path, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let folder_error = |source| StoreError::DataFolder {
            path: folder.to_owned(),
            source,
        };
        std::fs::create_dir_all(folder).map_err(folder_error)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(folder.join(LOCK_FILE))
            .map_err(folder_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(folder.to_owned()));
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(folder_error(source)),
        }
        let path = folder.join(DATABASE_FILE);
        let connection = Connection::open(&path)?;
        connection.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )?;
        settle_plans(&connection)?;
        migrate(&connection)?;
        Ok(Self {
            backend: Sqlite {
                writer: Writer::start(connection, metrics)?,
                readers: Arc::new(Readers::new(path)),
                _lock: lock,
            },
        })
    }
}

fn migrate(connection: &Connection) -> Result<(), StoreError> {
    connection.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")?;
    for (version, sql) in MIGRATIONS {
        let applied: bool = connection
            .query_row(
                "SELECT 1 FROM schema_migrations WHERE version = ?1",
                [version],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !applied {
            let transaction = connection.unchecked_transaction()?;
            transaction.execute_batch(sql)?;
            transaction.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, Timestamp::now().millis()],
            )?;
            transaction.commit()?;
        }
    }
    Ok(())
}

/// Read-only connections, reused across reads.
struct Readers {
    path: PathBuf,
    idle: Idle<Connection>,
}

impl Readers {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Idle::new(),
        }
    }

    /// Runs `work` on a read connection on the blocking thread pool.
    async fn read<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let connection = readers.idle.take(|| readers.open())?;
            let result = work(&connection);
            readers.idle.give_back(connection);
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// A new read connection.
    fn open(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags)?;
        connection.execute_batch("PRAGMA busy_timeout = 5000;")?;
        settle_plans(&connection)?;
        Ok(connection)
    }
}

/// Makes each statement's plan independent of the values bound to it, and keeps every
/// statement the store uses prepared.
///
/// Without the query planner stability guarantee, SQLite marks a parameter that a
/// partial index's condition or a range estimate looked at, and parses and plans the
/// statement again each time that parameter is bound: the lease query (`run_at <= ?1`,
/// a new `now` each time) and the checkpoint's updates were planned afresh on every
/// call, a quarter of the writer's time (bench/README.md). The queries that need a
/// particular index name it with `INDEXED BY`.
fn settle_plans(connection: &Connection) -> Result<(), StoreError> {
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// How many prepared statements a connection keeps: more than the store has.
const STATEMENT_CACHE: usize = 256;

impl Sqlite {
    /// The database file.
    pub(crate) fn database_path(&self) -> PathBuf {
        self.readers.path.clone()
    }
}

impl Backend for Sqlite {
    fn write<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: Fn(&dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(work)
    }

    fn read<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        self.readers.read(work)
    }

    fn cluster(&self) -> Option<Cluster> {
        None
    }

    fn sole_process(&self) -> bool {
        true
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Int(value) => ValueRef::Integer(*value),
            Self::Text(text) => ValueRef::Text(text.as_bytes()),
        }))
    }
}

impl Row for rusqlite::Row<'_> {
    fn opt_int(&self, column: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(column)?)
    }

    fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(column)?)
    }
}

impl Db for Connection {
    fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<u64, StoreError> {
        let changed = self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(args))?;
        Ok(changed as u64)
    }

    fn query(
        &self,
        sql: &str,
        args: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<Read, StoreError>,
    ) -> Result<(), StoreError> {
        let mut statement = self.prepare_cached(sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(args))?;
        while let Some(row) = rows.next()? {
            if each(row)? == Read::Enough {
                break;
            }
        }
        Ok(())
    }

    fn serialize(&self, _serial: Serial) -> Result<(), StoreError> {
        // One writer thread: every write transaction already runs alone.
        Ok(())
    }

    fn announce(&self, _signal: Signal) {
        // One process: its engine woke its own loops already.
    }
}

#[cfg(test)]
mod tests;
