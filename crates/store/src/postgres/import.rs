//! Moving a store from SQLite to PostgreSQL (`switchboard store migrate`).
//!
//! The SQLite store is opened as `serve` opens it (its folder locked for this process,
//! its schema brought up to date), and each table is copied row by row, in one
//! PostgreSQL transaction, into a store that holds nothing yet: all of it arrives, or
//! nothing does. Sequence numbers keep their values (events, messages, attempts), and
//! PostgreSQL's sequences continue after them. Nodes and schema versions are not copied;
//! each store has its own.

use std::path::Path;
use std::sync::Arc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::PostgresStore;
use crate::sql::{Backend, Value};
use crate::{SqliteStore, StoreError};

/// Every table copied, in an order that keeps references valid, with its columns; the
/// tables whose first column PostgreSQL numbers itself are marked.
const TABLES: &[(&str, bool, &str)] = &[
    (
        "executions",
        false,
        "id, integration, flow, status, attempt, created_at, run_at, started_at, finished_at, lease_token, lease_owner, lease_expires_at, error, attempts_from_seq, replay_of, cancel_requested, concurrency_key, concurrency_limit, ordering_key, debounce_key, throttle_key, throttle_count, throttle_per_ms, parent_id, wakes_parent, output, response, callback_url, scheduled_at",
    ),
    ("execution_payloads", false, "execution_id, trigger, input"),
    (
        "steps",
        false,
        "execution_id, seq, step_id, kind, status, attempt, input, output, error, started_at, finished_at",
    ),
    (
        "execution_logs",
        false,
        "execution_id, seq, at, level, step_id, message",
    ),
    (
        "alert_states",
        false,
        "integration, alert, firing, since, summary",
    ),
    (
        "dedupe_keys",
        false,
        "integration, flow, key, execution_id, expires_at",
    ),
    (
        "endpoints",
        false,
        "id, url, description, event_types, filter, headers, rate_limit, ordering, retry_schedule, disabled, disabled_reason, failing_since, metadata, tenant, secret, previous_secret, previous_secret_expires_at, created_at, updated_at",
    ),
    (
        "messages",
        true,
        "seq, id, event_type, payload, tenant, created_at",
    ),
    (
        "deliveries",
        false,
        "execution_id, message_id, endpoint_id, created_at",
    ),
    (
        "delivery_attempts",
        true,
        "id, execution_id, message_id, endpoint_id, attempt, url, at, status, response_status, latency_ms, response_headers, response_body, body_truncated, error_kind, error",
    ),
    ("events", true, "seq, id, topic, key, source, time, data"),
    ("bus_cursors", false, "subscriber, seq"),
    ("flow_state", false, "namespace, key, value, updated_at"),
    (
        "deployments",
        false,
        "integration, fingerprint, source, deployed_at, updated_at",
    ),
    (
        "schedules",
        false,
        "integration, flow, timing, next_fire_at, paused, last_fire_at, last_success_at",
    ),
    (
        "schedule_fires",
        false,
        "integration, flow, scheduled_at, fired_at, outcome, execution_id",
    ),
    (
        "file_claims",
        false,
        "integration, flow, path, size, modified_at, execution_id, claimed_at",
    ),
];

/// The tables whose rows mean the store is in use.
const IN_USE: &[&str] = &[
    "executions",
    "events",
    "endpoints",
    "messages",
    "deployments",
];

/// How many rows of each table were copied, in copy order.
pub type Copied = Vec<(&'static str, u64)>;

impl PostgresStore {
    /// Copies every record of the SQLite store in `folder` into this store, which must
    /// hold none yet. No process may have the folder open.
    pub async fn import_sqlite(&self, folder: &Path) -> Result<Copied, StoreError> {
        // Locks the folder against a `serve` starting meanwhile, and brings the SQLite
        // schema to the version the columns above name.
        let source = SqliteStore::open(folder, Arc::default())?;
        let database = source.backend.database_path();
        let copied = self
            .backend
            .write(move |db| {
                for table in IN_USE {
                    let rows = db.one(&format!("SELECT count(*) FROM {table}"), &[], |row| {
                        row.int(0)
                    })?;
                    if rows > 0 {
                        return Err(StoreError::Corrupt(format!(
                            "the target store already holds data ({rows} rows in {table}); migrate into an empty database or schema"
                        )));
                    }
                }
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let sqlite = Connection::open_with_flags(&database, flags)?;
                let mut copied = Vec::new();
                for &(table, numbered, columns) in TABLES {
                    let count = columns.split(',').count();
                    let placeholders = (1..=count)
                        .map(|n| format!("?{n}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let overriding = if numbered { "OVERRIDING SYSTEM VALUE" } else { "" };
                    let insert = format!(
                        "INSERT INTO {table} ({columns}) {overriding} VALUES ({placeholders})"
                    );
                    let mut statement = sqlite.prepare(&format!("SELECT {columns} FROM {table}"))?;
                    let mut rows = statement.query([])?;
                    let mut rows_copied = 0;
                    while let Some(row) = rows.next()? {
                        let values = (0..count)
                            .map(|column| value(row.get_ref(column)?, table))
                            .collect::<Result<Vec<_>, StoreError>>()?;
                        db.execute(&insert, &values)?;
                        rows_copied += 1;
                    }
                    if numbered {
                        let key = columns.split(',').next().unwrap_or("id");
                        db.one(
                            &format!(
                                "SELECT setval(pg_get_serial_sequence('{table}', '{key}'), COALESCE(MAX({key}), 0) + 1, false) FROM {table}"
                            ),
                            &[],
                            |_| Ok(()),
                        )?;
                    }
                    copied.push((table, rows_copied));
                }
                Ok(copied)
            })
            .await?;
        drop(source);
        Ok(copied)
    }
}

/// A SQLite value as a parameter; the store keeps only integers, text and `NULL`.
fn value(stored: ValueRef<'_>, table: &str) -> Result<Value<'static>, StoreError> {
    match stored {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Integer(value) => Ok(Value::Int(value)),
        ValueRef::Text(text) => Ok(Value::Text(
            String::from_utf8_lossy(text).into_owned().into(),
        )),
        ValueRef::Real(_) | ValueRef::Blob(_) => Err(StoreError::Corrupt(format!(
            "a value in {table} is neither an integer nor text"
        ))),
    }
}
