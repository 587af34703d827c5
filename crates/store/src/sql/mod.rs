//! The store's queries, written once for every SQL backend.
//!
//! A backend ([`Backend`]: SQLite in `crate::sqlite`, PostgreSQL in `crate::postgres`)
//! owns its connections and runs *jobs*: a write job is a function of a [`Db`], run in a
//! transaction that is durable when the job's caller hears back; a read job runs on a
//! connection of its own. [`SqlStore`] implements every store trait on top of that, so
//! each query and each rule (leasing, flow control, de-duplication, schedules, the bus)
//! exists once and both backends answer alike.
//!
//! The SQL is the dialect both databases speak: numbered parameters (`?1`, turned into
//! `$1` for PostgreSQL), integer millisecond times, JSON as text, flags as 0 and 1,
//! `ON CONFLICT` upserts, `RETURNING`, `count(*) FILTER (WHERE …)`. A query that needs
//! a particular SQLite index names it with `INDEXED BY`, which the PostgreSQL backend
//! drops; what must not interleave across PostgreSQL nodes asks [`Db::serialize`].

mod alerts;
mod bus;
mod claims;
mod cluster;
mod control;
mod deploy;
mod ends;
mod executions;
mod flow_control;
mod jobs;
mod outbound;
mod schedule;
#[cfg(test)]
pub(crate) mod tests;

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use serde_json::Value as Json;
use switchboard_core::ExecutionId;

use crate::StoreError;
use crate::cluster::{Cluster, Signal};
use crate::records::{ErrorRecord, ExecutionStatus};

pub(crate) use executions::insert_execution;

/// Serializes, on PostgreSQL, the transactions that must not interleave across nodes.
#[derive(Debug, Clone, Copy)]
pub enum Serial {
    /// Appending events: a sequence number taken is committed before the next is taken,
    /// so a cursor that read past a number never misses an event that commits later.
    Bus = 1,
    /// Leasing: flow control counts what runs, so two nodes leasing at once could both
    /// see room for the last slot of a concurrency group or throttle.
    Lease = 2,
}

/// A value bound to a statement parameter.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    /// SQL `NULL`.
    Null,
    /// An integer (flags are 0 and 1).
    Int(i64),
    /// Text.
    Text(Cow<'a, str>),
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u32> for Value<'_> {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<u16> for Value<'_> {
    fn from(value: u16) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<u64> for Value<'_> {
    fn from(value: u64) -> Self {
        Self::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value<'_> {
    fn from(value: usize) -> Self {
        Self::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Self::Int(i64::from(value))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(Cow::Borrowed(value))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(value: &'a String) -> Self {
        Self::Text(Cow::Borrowed(value))
    }
}

impl From<String> for Value<'_> {
    fn from(value: String) -> Self {
        Self::Text(Cow::Owned(value))
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// The parameters of a statement: `args![a, b]` is `&[Value::from(a), Value::from(b)]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::sql::Value::from($value)),*]
    };
}
pub(crate) use args;

/// One row of a result, by column position.
pub trait Row {
    /// An integer column that is never `NULL`.
    fn int(&self, column: usize) -> Result<i64, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {column} is NULL")))
    }

    /// An integer column.
    fn opt_int(&self, column: usize) -> Result<Option<i64>, StoreError>;

    /// A text column that is never `NULL`.
    fn text(&self, column: usize) -> Result<String, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {column} is NULL")))
    }

    /// A text column.
    fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError>;

    /// A 0-or-1 column.
    fn flag(&self, column: usize) -> Result<bool, StoreError> {
        Ok(self.int(column)? != 0)
    }

    /// A JSON text column that is never `NULL`.
    fn json(&self, column: usize) -> Result<Json, StoreError> {
        parse_json(&self.text(column)?)
    }

    /// A JSON text column.
    fn opt_json(&self, column: usize) -> Result<Option<Json>, StoreError> {
        self.opt_text(column)?
            .map(|text| parse_json(&text))
            .transpose()
    }
}

/// A connection (inside a transaction, for a write job) that runs statements.
pub trait Db {
    /// Runs a statement; answers how many rows it changed.
    fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<u64, StoreError>;

    /// Runs a query, handing each row to `each` in order until it answers
    /// [`Read::Enough`] (a statement that changes rows has changed them all by then).
    fn query(
        &self,
        sql: &str,
        args: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<Read, StoreError>,
    ) -> Result<(), StoreError>;

    /// Holds `serial` until the transaction ends (PostgreSQL; SQLite has one writer).
    fn serialize(&self, serial: Serial) -> Result<(), StoreError>;

    /// Tells the other nodes, once this transaction commits, that it made a change of
    /// this kind (PostgreSQL's `NOTIFY`; on SQLite there are no other nodes).
    fn announce(&self, signal: Signal);
}

/// Whether a query's reader wants the next row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The next row, if there is one.
    More,
    /// No more rows: the rest are not read.
    Enough,
}

impl dyn Db + '_ {
    /// Every row of a query, each mapped by `map`.
    pub(crate) fn rows<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        map: impl Fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut rows = Vec::new();
        self.query(sql, args, &mut |row| {
            rows.push(map(row)?);
            Ok(Read::More)
        })?;
        Ok(rows)
    }

    /// The first row of a query, mapped by `map`, if there is one.
    pub(crate) fn row<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        map: impl Fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut first = None;
        self.query(sql, args, &mut |row| {
            first = Some(map(row)?);
            Ok(Read::Enough)
        })?;
        Ok(first)
    }

    /// The first row of a query that always answers one (an aggregate).
    pub(crate) fn one<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        map: impl Fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.row(sql, args, map)?
            .ok_or_else(|| StoreError::Corrupt(String::from("a query answered no row")))
    }
}

/// What owns a backend's connections and runs jobs on them.
pub trait Backend: Send + Sync + 'static {
    /// Runs `work` in a write transaction; answers once the transaction is committed
    /// and durable. `work` may run more than once (a batch retried, a serialization
    /// conflict), so it must only write through the [`Db`] it is given.
    fn write<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: Fn(&dyn Db) -> Result<T, StoreError> + Send + 'static;

    /// Runs `work` on a read connection.
    fn read<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, StoreError> + Send + 'static;

    /// How this node hears from the others, where there are others.
    fn cluster(&self) -> Option<Cluster>;

    /// Whether executions left `running` by processes other than this one are orphans
    /// at start-up: true where one process alone opens the store (SQLite); elsewhere a
    /// lease is only taken over once it expires.
    fn sole_process(&self) -> bool;
}

/// Connections not in use, kept for the next job of a backend.
pub(crate) struct Idle<C> {
    connections: Mutex<Vec<C>>,
}

impl<C> Idle<C> {
    /// None yet.
    pub(crate) fn new() -> Self {
        Self {
            connections: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one from `open`.
    pub(crate) fn take(
        &self,
        open: impl FnOnce() -> Result<C, StoreError>,
    ) -> Result<C, StoreError> {
        let idle = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        idle.map_or_else(open, Ok)
    }

    /// Keeps `connection` for the next job.
    pub(crate) fn give_back(&self, connection: C) {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connection);
    }

    /// Every idle connection, taken out.
    pub(crate) fn drain(&mut self) -> Vec<C> {
        std::mem::take(
            self.connections
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// The [`Store`](crate::Store) on an SQL backend.
pub struct SqlStore<B> {
    pub(crate) backend: B,
}

fn parse_json(text: &str) -> Result<Json, StoreError> {
    Ok(serde_json::from_str(text)?)
}

fn json_text(value: &Json) -> String {
    value.to_string()
}

fn parse_error(text: Option<String>) -> Result<Option<ErrorRecord>, StoreError> {
    text.map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(StoreError::from)
}

fn error_text(error: Option<&ErrorRecord>) -> Result<Option<String>, StoreError> {
    Ok(error.map(serde_json::to_string).transpose()?)
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

fn as_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
