//! The embedded store: SQLite in WAL mode in a data folder.

mod alerts;
mod bus;
mod claims;
mod control;
mod deploy;
mod ends;
mod flow_control;
mod outbound;
mod schedule;
mod writer;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde_json::Value;
use switchboard_core::ids::{LeaseToken, NodeId};
use switchboard_core::{ExecutionId, Timestamp};
use switchboard_telemetry::Metrics;

use crate::records::{
    AlertChange, AlertState, Checkpointed, Control, Enqueued, Pruned, WindowStats,
};
use crate::records::{
    Checkpoint, End, ErrorRecord, ExecutionDetail, ExecutionFilter, ExecutionStatus,
    ExecutionSummary, LeasedExecution, LogRecord, NewExecution, Outcome, Page, QueuedFlow, Slots,
    StepRecord, StepStatus,
};
use crate::{Store, StoreError};
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
];

/// The database file inside the data folder.
const DATABASE_FILE: &str = "switchboard.db";

/// The lock file that keeps a second process out of the data folder.
const LOCK_FILE: &str = "LOCK";

/// The [`Store`] on SQLite.
pub struct SqliteStore {
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
            writer: Writer::start(connection, metrics)?,
            readers: Arc::new(Readers::new(path)),
            _lock: lock,
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
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `work` on a read connection on the blocking thread pool.
    async fn read<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let connection = readers.take()?;
            let result = work(&connection);
            readers
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(connection);
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match idle {
            Some(connection) => Ok(connection),
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let connection = Connection::open_with_flags(&self.path, flags)?;
                connection.execute_batch("PRAGMA busy_timeout = 5000;")?;
                settle_plans(&connection)?;
                Ok(connection)
            }
        }
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

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn parse_json(text: &str) -> Result<Value, StoreError> {
    Ok(serde_json::from_str(text)?)
}

fn parse_error(text: Option<String>) -> Result<Option<ErrorRecord>, StoreError> {
    text.map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(StoreError::from)
}

fn parse_id(text: &str) -> Result<ExecutionId, StoreError> {
    text.parse()
        .map_err(|error: switchboard_core::IdError| StoreError::Corrupt(error.to_string()))
}

fn parse_status(text: &str) -> Result<ExecutionStatus, StoreError> {
    ExecutionStatus::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown execution status `{text}`")))
}

fn as_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

const SUMMARY_COLUMNS: &str = "id, integration, flow, status, attempt, created_at, started_at, finished_at, error, run_at, replay_of, parent_id";

fn summary_from_row(row: &Row<'_>) -> Result<ExecutionSummary, StoreError> {
    let status = parse_status(&row.get::<_, String>(3)?)?;
    Ok(ExecutionSummary {
        id: parse_id(&row.get::<_, String>(0)?)?,
        integration: row.get(1)?,
        flow: row.get(2)?,
        status,
        replay_of: row
            .get::<_, Option<String>>(10)?
            .map(|id| parse_id(&id))
            .transpose()?,
        parent_id: row
            .get::<_, Option<String>>(11)?
            .map(|id| parse_id(&id))
            .transpose()?,
        next_attempt_at: (status == ExecutionStatus::Retrying)
            .then(|| row.get(9).map(Timestamp))
            .transpose()?,
        resumes_at: (status == ExecutionStatus::Waiting)
            .then(|| row.get(9).map(Timestamp))
            .transpose()?,
        attempt: as_u32(row.get(4)?),
        created_at: Timestamp(row.get(5)?),
        started_at: row.get::<_, Option<i64>>(6)?.map(Timestamp),
        finished_at: row.get::<_, Option<i64>>(7)?.map(Timestamp),
        error: parse_error(row.get(8)?)?,
    })
}

fn step_from_row(row: &Row<'_>) -> Result<StepRecord, StoreError> {
    let status = match row.get::<_, String>(4)?.as_str() {
        "succeeded" => StepStatus::Succeeded,
        "skipped" => StepStatus::Skipped,
        "waiting" => StepStatus::Waiting,
        _ => StepStatus::Failed,
    };
    let started_at: i64 = row.get(8)?;
    let finished_at: i64 = row.get(9)?;
    Ok(StepRecord {
        seq: as_u32(row.get(0)?),
        step_id: row.get(1)?,
        kind: row.get(2)?,
        attempt: as_u32(row.get(3)?),
        status,
        input: parse_json(&row.get::<_, String>(5)?)?,
        output: row
            .get::<_, Option<String>>(6)?
            .map(|text| parse_json(&text))
            .transpose()?,
        error: parse_error(row.get(7)?)?,
        started_at: Timestamp(started_at),
        finished_at: Timestamp(finished_at),
        duration_ms: finished_at - started_at,
    })
}

const STEP_COLUMNS: &str =
    "seq, step_id, kind, attempt, status, input, output, error, started_at, finished_at";

fn steps_of(
    connection: &Connection,
    id: &str,
    only_succeeded: bool,
) -> Result<Vec<StepRecord>, StoreError> {
    let filter = if only_succeeded {
        "AND status IN ('succeeded', 'skipped', 'waiting')"
    } else {
        ""
    };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {STEP_COLUMNS} FROM steps WHERE execution_id = ?1 {filter} ORDER BY seq"
    ))?;
    let mut rows = statement.query([id])?;
    let mut steps = Vec::new();
    while let Some(row) = rows.next()? {
        steps.push(step_from_row(row)?);
    }
    Ok(steps)
}

/// How many failed attempts each step of an execution has had.
fn failed_attempts(connection: &Connection, id: &str) -> Result<BTreeMap<String, u32>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT step_id, count(*) FROM steps WHERE execution_id = ?1 AND status = 'failed'
            AND seq >= (SELECT attempts_from_seq FROM executions WHERE id = ?1)
          GROUP BY step_id",
    )?;
    let rows = statement.query_map([id], |row| Ok((row.get(0)?, as_u32(row.get(1)?))))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn next_seq(connection: &Connection, table: &str, id: &str) -> Result<u32, StoreError> {
    let sql = format!("SELECT COALESCE(MAX(seq) + 1, 0) FROM {table} WHERE execution_id = ?1");
    Ok(as_u32(
        connection
            .prepare_cached(&sql)?
            .query_row([id], |row| row.get(0))?,
    ))
}

/// The execution holding `new`'s dedupe key, if a live one does; otherwise the key is
/// taken for `new` (its execution must be inserted in the same transaction).
fn dedupe_holder(
    connection: &Connection,
    new: &NewExecution,
) -> Result<Option<ExecutionId>, StoreError> {
    let Some(dedupe) = &new.dedupe else {
        return Ok(None);
    };
    let holder: Option<String> = connection
        .prepare_cached(
            "SELECT execution_id FROM dedupe_keys
              WHERE integration = ?1 AND flow = ?2 AND key = ?3 AND expires_at > ?4",
        )?
        .query_row(
            params![
                new.integration,
                new.flow,
                dedupe.key,
                new.created_at.millis()
            ],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(holder) = holder {
        return Ok(Some(parse_id(&holder)?));
    }
    connection
        .prepare_cached(
            "INSERT OR REPLACE INTO dedupe_keys (integration, flow, key, execution_id, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            new.integration,
            new.flow,
            dedupe.key,
            new.id.as_str(),
            dedupe.expires_at.millis()
        ])?;
    Ok(None)
}

/// Queues a new execution, runnable at once.
fn insert_execution(connection: &Connection, new: &NewExecution) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO executions (id, integration, flow, status, created_at, run_at,
                replay_of, concurrency_key, concurrency_limit, ordering_key, debounce_key,
                throttle_key, throttle_count, throttle_per_ms, parent_id, wakes_parent, scheduled_at)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?
        .execute(params![
            new.id.as_str(),
            new.integration,
            new.flow,
            new.created_at.millis(),
            new.not_before.unwrap_or(new.created_at).millis(),
            new.replay_of.as_ref().map(ExecutionId::as_str),
            new.concurrency.as_ref().map(|group| group.key.as_str()),
            new.concurrency.as_ref().map(|group| group.limit),
            new.ordering_key,
            new.debounce_key,
            new.throttle.as_ref().map(|group| group.key.as_str()),
            new.throttle.as_ref().map(|group| group.count),
            new.throttle
                .as_ref()
                .map(|group| i64::try_from(group.per.as_millis()).unwrap_or(i64::MAX)),
            new.parent.as_ref().map(|parent| parent.id.as_str()),
            new.parent.as_ref().is_some_and(|parent| parent.waits),
            new.scheduled_at.map(Timestamp::millis),
        ])?;
    connection
        .prepare_cached(
            "INSERT INTO execution_payloads (execution_id, trigger, input) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![
            new.id.as_str(),
            json_text(&new.trigger),
            json_text(&new.input)
        ])?;
    if let Some(key) = &new.debounce_key {
        flow_control::supersede(connection, new, key)?;
    }
    Ok(())
}

fn lease_batch(
    connection: &Connection,
    node: &NodeId,
    slots: Slots,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<Vec<LeasedExecution>, StoreError> {
    control::cancel_requeued(connection)?;
    let mut chosen = flow_control::lease_candidates(connection, slots.flows, false, now)?;
    chosen.extend(flow_control::lease_candidates(
        connection,
        slots.deliveries,
        true,
        now,
    )?);
    let lease = LeaseToken::generate();
    let now = now.millis();
    let mut statement = connection.prepare_cached(
        "UPDATE executions
            SET status = 'running', attempt = attempt + 1, lease_token = ?1, lease_owner = ?2,
                lease_expires_at = ?3, started_at = COALESCE(started_at, ?4)
          WHERE id = ?5
      RETURNING id, integration, flow, attempt, created_at",
    )?;
    let mut leased = Vec::new();
    for id in &chosen {
        let mut rows = statement.query(params![
            lease.as_str(),
            node.as_str(),
            expires_at.millis(),
            now,
            id
        ])?;
        let Some(row) = rows.next()? else { continue };
        let id: String = row.get(0)?;
        leased.push(LeasedExecution {
            id: parse_id(&id)?,
            lease: lease.clone(),
            integration: row.get(1)?,
            flow: row.get(2)?,
            trigger: Value::Null,
            input: Value::Null,
            attempt: as_u32(row.get(3)?),
            created_at: Timestamp(row.get(4)?),
            failed_attempts: BTreeMap::new(),
            finished_steps: Vec::new(),
            next_step_seq: 0,
            next_log_seq: 0,
        });
    }
    leased.sort_by(|a, b| a.id.cmp(&b.id));
    for execution in &mut leased {
        let id = execution.id.as_str();
        (execution.trigger, execution.input) = payload(connection, id)?;
        if execution.attempt == 1 {
            // Its first lease: nothing of it is recorded yet.
            continue;
        }
        execution.finished_steps = steps_of(connection, id, true)?;
        execution.failed_attempts = failed_attempts(connection, id)?;
        execution.next_step_seq = next_seq(connection, "steps", id)?;
        execution.next_log_seq = next_seq(connection, "execution_logs", id)?;
    }
    Ok(leased)
}

/// An execution's trigger and input.
fn payload(connection: &Connection, id: &str) -> Result<(Value, Value), StoreError> {
    let (trigger, input): (String, String) = connection
        .prepare_cached("SELECT trigger, input FROM execution_payloads WHERE execution_id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok((parse_json(&trigger)?, parse_json(&input)?))
}

fn write_checkpoint(
    connection: &Connection,
    checkpoint: &Checkpoint,
) -> Result<Checkpointed, StoreError> {
    let id = checkpoint.execution.as_str();
    let cancel_requested: Option<bool> = connection
        .prepare_cached(
            "SELECT cancel_requested FROM executions WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
        )?
        .query_row([id, checkpoint.lease.as_str()], |row| row.get(0))
        .optional()?;
    let Some(cancel_requested) = cancel_requested else {
        return Err(StoreError::LeaseLost(checkpoint.execution.clone()));
    };
    let mut insert_step = connection.prepare_cached(
        "INSERT OR REPLACE INTO steps (execution_id, seq, step_id, kind, status, attempt, input, output, error, started_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for step in &checkpoint.steps {
        insert_step.execute(params![
            id,
            step.seq,
            step.step_id,
            step.kind,
            step.status.as_str(),
            step.attempt,
            json_text(&step.input),
            step.output.as_ref().map(json_text),
            step.error.as_ref().map(serde_json::to_string).transpose()?,
            step.started_at.millis(),
            step.finished_at.millis(),
        ])?;
    }
    let mut insert_log = connection.prepare_cached(
        "INSERT OR REPLACE INTO execution_logs (execution_id, seq, at, level, step_id, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for line in &checkpoint.logs {
        insert_log.execute(params![
            id,
            line.seq,
            line.at.millis(),
            line.level.as_str(),
            line.step,
            line.message
        ])?;
    }
    match &checkpoint.end {
        // An execution that reached its end keeps that end, even if a cancel came late.
        None | Some(End::Retry { .. } | End::Wait { .. }) if cancel_requested => {
            control::mark_cancelled(connection, id)?;
            return Ok(Checkpointed::Cancelled);
        }
        None => {}
        Some(End::Finished(finish)) => {
            connection
                .prepare_cached(
                    "UPDATE executions SET status = ?2, error = ?3, finished_at = ?4, output = ?5,
                        lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                  WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    finish.status.as_str(),
                    finish
                        .error
                        .as_ref()
                        .map(serde_json::to_string)
                        .transpose()?,
                    Timestamp::now().millis(),
                    finish.output.as_ref().map(json_text),
                ])?;
        }
        Some(End::Retry { at, error }) => {
            connection
                .prepare_cached(
                    "UPDATE executions SET status = 'retrying', run_at = ?2, error = ?3,
                        lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                  WHERE id = ?1",
                )?
                .execute(params![id, at.millis(), serde_json::to_string(error)?])?;
        }
        Some(End::Wait { at, awaiting }) => {
            // A child that ended before this commit found its parent still running, so
            // it could not wake it: the parent wakes at once instead.
            let at = if ends::any_ended(connection, awaiting)? {
                Timestamp::now()
            } else {
                *at
            };
            connection
                .prepare_cached(
                    "UPDATE executions SET status = 'waiting', run_at = ?2, error = NULL,
                        lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                  WHERE id = ?1",
                )?
                .execute(params![id, at.millis()])?;
        }
    }
    if let Some(response) = &checkpoint.response {
        connection
            .prepare_cached(
                "UPDATE executions SET response = COALESCE(response, ?2) WHERE id = ?1",
            )?
            .execute(params![id, json_text(response)])?;
    }
    bus::append_events(connection, &checkpoint.events)?;
    bus::change_state(connection, &checkpoint.state)?;
    for follow_up in &checkpoint.follow_ups {
        insert_execution(connection, follow_up)?;
    }
    if let Some(End::Finished(_)) = &checkpoint.end {
        ends::ended(connection, id)?;
    }
    Ok(Checkpointed::Saved)
}

#[async_trait]
impl Store for SqliteStore {
    async fn enqueue(&self, new: NewExecution) -> Result<Enqueued, StoreError> {
        self.writer
            .write(move |connection| {
                if let Some(holder) = dedupe_holder(connection, &new)? {
                    return Ok(Enqueued {
                        id: holder,
                        duplicate: true,
                    });
                }
                insert_execution(connection, &new)?;
                Ok(Enqueued {
                    id: new.id.clone(),
                    duplicate: false,
                })
            })
            .await
    }

    async fn lease(
        &self,
        node: &NodeId,
        slots: Slots,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Vec<LeasedExecution>, StoreError> {
        let node = node.clone();
        self.writer
            .write(move |connection| lease_batch(connection, &node, slots, now, expires_at))
            .await
    }

    async fn renew(
        &self,
        leases: Vec<(ExecutionId, LeaseToken)>,
        expires_at: Timestamp,
    ) -> Result<Vec<ExecutionId>, StoreError> {
        self.writer
            .write(move |connection| {
                let mut statement = connection.prepare_cached(
                    "UPDATE executions SET lease_expires_at = ?3 WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
                )?;
                let mut lost = Vec::new();
                for (id, lease) in &leases {
                    if statement.execute(params![id.as_str(), lease.as_str(), expires_at.millis()])? == 0 {
                        lost.push(id.clone());
                    }
                }
                Ok(lost)
            })
            .await
    }

    async fn checkpoint(&self, checkpoint: Checkpoint) -> Result<Checkpointed, StoreError> {
        self.writer
            .write(move |connection| write_checkpoint(connection, &checkpoint))
            .await
    }

    async fn release(&self, leases: Vec<(ExecutionId, LeaseToken)>) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                let mut statement = connection.prepare_cached(
                    "UPDATE executions SET status = 'queued', lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                      WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
                )?;
                for (id, lease) in &leases {
                    statement.execute(params![id.as_str(), lease.as_str()])?;
                }
                Ok(())
            })
            .await
    }

    async fn requeue_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .write(move |connection| {
                let changed = connection
                    .prepare_cached(
                        "UPDATE executions SET status = 'queued', lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                          WHERE status = 'running' AND lease_expires_at < ?1",
                    )?
                    .execute([now.millis()])?;
                Ok(changed as u64)
            })
            .await
    }

    async fn recover_orphans(&self, node: &NodeId) -> Result<u64, StoreError> {
        let node = node.clone();
        self.writer
            .write(move |connection| {
                let changed = connection
                    .prepare_cached(
                        "UPDATE executions SET status = 'queued', lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                          WHERE status = 'running' AND (lease_owner IS NULL OR lease_owner <> ?1)",
                    )?
                    .execute([node.as_str()])?;
                Ok(changed as u64)
            })
            .await
    }

    async fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionDetail>, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |connection| {
                let sql = format!("SELECT {SUMMARY_COLUMNS}, output, response FROM executions WHERE id = ?1");
                let mut statement = connection.prepare_cached(&sql)?;
                let mut rows = statement.query([id.as_str()])?;
                let Some(row) = rows.next()? else { return Ok(None) };
                let summary = summary_from_row(row)?;
                let output = row.get::<_, Option<String>>(12)?.as_deref().map(parse_json).transpose()?;
                let response = row.get::<_, Option<String>>(13)?.as_deref().map(parse_json).transpose()?;
                drop(rows);
                let (trigger, input) = payload(connection, id.as_str())?;
                let steps = steps_of(connection, id.as_str(), false)?;
                let mut statement = connection
                    .prepare_cached("SELECT seq, at, level, step_id, message FROM execution_logs WHERE execution_id = ?1 ORDER BY seq")?;
                let mut rows = statement.query([id.as_str()])?;
                let mut log = Vec::new();
                while let Some(row) = rows.next()? {
                    log.push(LogRecord::from_row(as_u32(row.get(0)?), row.get(1)?, &row.get::<_, String>(2)?, row.get(3)?, row.get(4)?));
                }
                Ok(Some(ExecutionDetail { summary, trigger, input, output, response, steps, log }))
            })
            .await
    }

    async fn outcome(&self, id: &ExecutionId) -> Result<Option<Outcome>, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |connection| {
                let row = connection
                    .prepare_cached(
                        "SELECT status, error, output, response FROM executions WHERE id = ?1",
                    )?
                    .query_row([id.as_str()], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, Option<String>>(1)?,
                            row.get::<_, Option<String>>(2)?,
                            row.get::<_, Option<String>>(3)?,
                        ))
                    })
                    .optional()?;
                let Some((status, error, output, response)) = row else {
                    return Ok(None);
                };
                Ok(Some(Outcome {
                    status: parse_status(&status)?,
                    error: parse_error(error)?,
                    output: output.as_deref().map(parse_json).transpose()?,
                    response: response.as_deref().map(parse_json).transpose()?,
                }))
            })
            .await
    }

    async fn hand_off(&self, id: &ExecutionId, url: &str) -> Result<bool, StoreError> {
        let (id, url) = (id.clone(), url.to_owned());
        self.writer
            .write(move |connection| ends::hand_off(connection, id.as_str(), &url))
            .await
    }

    async fn executions(
        &self,
        filter: ExecutionFilter,
        limit: usize,
        cursor: Option<ExecutionId>,
    ) -> Result<Page<ExecutionSummary>, StoreError> {
        self.readers
            .read(move |connection| {
                let mut conditions = Vec::new();
                let mut values: Vec<rusqlite::types::Value> = Vec::new();
                let mut condition = |sql: &str, value: rusqlite::types::Value| {
                    values.push(value);
                    conditions.push(format!("{sql} ?{}", values.len()));
                };
                if let Some(integration) = filter.integration {
                    condition("integration =", integration.into());
                }
                if let Some(flow) = filter.flow {
                    condition("flow =", flow.into());
                }
                if let Some(status) = filter.status {
                    condition("status =", status.as_str().to_owned().into());
                }
                if let Some(since) = filter.since {
                    condition("created_at >=", since.millis().into());
                }
                if let Some(until) = filter.until {
                    condition("created_at <", until.millis().into());
                }
                if let Some(code) = filter.error_code {
                    condition("json_extract(error, '$.code') =", code.into());
                }
                if let Some(parent) = filter.parent_id {
                    condition("parent_id =", parent.to_string().into());
                }
                if let Some(cursor) = cursor {
                    condition("id <", cursor.to_string().into());
                }
                let condition = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
                let sql = format!("SELECT {SUMMARY_COLUMNS} FROM executions {condition} ORDER BY id DESC LIMIT {}", limit + 1);
                let mut statement = connection.prepare_cached(&sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(values.iter()))?;
                let mut items = Vec::new();
                while let Some(row) = rows.next()? {
                    items.push(summary_from_row(row)?);
                }
                Ok(Page::overfetched(items, limit, |item| item.id.to_string()))
            })
            .await
    }

    async fn next_run_at(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        self.readers
            .read(move |connection| {
                let next: Option<i64> = connection
                    .prepare_cached(
                        // Without the index named, the planner walks the status index
                        // through the whole backlog (the lease query's story).
                        "SELECT min(run_at) FROM executions INDEXED BY executions_runnable
                          WHERE status IN ('queued', 'retrying', 'waiting') AND run_at > ?1",
                    )?
                    .query_row([now.millis()], |row| row.get(0))?;
                Ok(next.map(Timestamp))
            })
            .await
    }

    async fn queue(&self, now: Timestamp) -> Result<Vec<QueuedFlow>, StoreError> {
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT integration, flow, count(*), min(run_at) FROM executions
                     WHERE status IN ('queued', 'retrying', 'waiting') AND run_at <= ?1
                     GROUP BY integration, flow",
                )?;
                let rows = statement.query_map([now.millis()], |row| {
                    Ok(QueuedFlow {
                        integration: row.get(0)?,
                        flow: row.get(1)?,
                        depth: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                        oldest_runnable_since: Timestamp(row.get(3)?),
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn window_stats(
        &self,
        integration: &str,
        flows: &[String],
        since: Timestamp,
    ) -> Result<WindowStats, StoreError> {
        let integration = integration.to_owned();
        let flows = flows.to_vec();
        self.readers
            .read(move |connection| alerts::window_stats(connection, &integration, &flows, since))
            .await
    }

    async fn alert_states(&self) -> Result<Vec<AlertState>, StoreError> {
        self.readers.read(alerts::alert_states).await
    }

    async fn change_alert(&self, change: AlertChange) -> Result<bool, StoreError> {
        self.writer
            .write(move |connection| alerts::change_alert(connection, &change))
            .await
    }

    async fn retry_failed(&self, id: &ExecutionId) -> Result<Control, StoreError> {
        let id = id.clone();
        self.writer
            .write(move |connection| control::retry_failed(connection, &id))
            .await
    }

    async fn cancel(&self, id: &ExecutionId) -> Result<Control, StoreError> {
        let id = id.clone();
        self.writer
            .write(move |connection| control::cancel(connection, &id))
            .await
    }

    async fn prune(
        &self,
        ended_before: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Pruned, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.writer
            .write(move |connection| {
                let executions = connection
                    .prepare_cached(
                        "DELETE FROM executions WHERE id IN (
                           SELECT id FROM executions
                            WHERE finished_at < ?1 AND status IN ('succeeded', 'failed', 'cancelled')
                            LIMIT ?2)",
                    )?
                    .execute(params![ended_before.millis(), limit])?;
                let dedupe_keys = connection
                    .prepare_cached(
                        "DELETE FROM dedupe_keys WHERE rowid IN (
                           SELECT rowid FROM dedupe_keys WHERE expires_at <= ?1 LIMIT ?2)",
                    )?
                    .execute(params![now.millis(), limit])?;
                connection
                    .prepare_cached(
                        "DELETE FROM schedule_fires WHERE rowid IN (
                           SELECT rowid FROM schedule_fires WHERE fired_at < ?1 LIMIT ?2)",
                    )?
                    .execute(params![ended_before.millis(), limit])?;
                // Deliveries and attempts go with their executions; a message goes once
                // it has no delivery left and is past retention itself.
                connection
                    .prepare_cached(
                        "DELETE FROM deliveries WHERE execution_id IN (
                           SELECT d.execution_id FROM deliveries d
                            WHERE d.created_at < ?1
                              AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = d.execution_id)
                            LIMIT ?2)",
                    )?
                    .execute(params![ended_before.millis(), limit])?;
                connection
                    .prepare_cached(
                        "DELETE FROM delivery_attempts WHERE id IN (
                           SELECT a.id FROM delivery_attempts a
                            WHERE a.at < ?1
                              AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = a.execution_id)
                            LIMIT ?2)",
                    )?
                    .execute(params![ended_before.millis(), limit])?;
                let messages = connection
                    .prepare_cached(
                        "DELETE FROM messages WHERE seq IN (
                           SELECT m.seq FROM messages m
                            WHERE m.created_at < ?1
                              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id)
                            LIMIT ?2)",
                    )?
                    .execute(params![ended_before.millis(), limit])?;
                // An event goes once it is past retention and every subscriber has it.
                let events = connection
                    .prepare_cached(
                        "DELETE FROM events WHERE seq IN (
                           SELECT seq FROM events
                            WHERE time < ?1 AND seq <= coalesce((SELECT min(seq) FROM bus_cursors), 9223372036854775807)
                            LIMIT ?2)",
                    )?
                    .execute(params![ended_before.millis(), limit])?;
                Ok(Pruned {
                    executions: executions as u64,
                    dedupe_keys: dedupe_keys as u64,
                    messages: messages as u64,
                    events: events as u64,
                })
            })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .read(|connection| Ok(connection.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}

#[cfg(test)]
mod tests;
