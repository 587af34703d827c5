//! The durable store: where every accepted input, execution and step result lives.
//!
//! [`Store`] is the one interface the engine and the server use. Its queries are
//! written once (`sql`) over two backends:
//!
//! - [`SqliteStore`], the embedded default: a data folder with a WAL-mode SQLite
//!   database, one writer thread committing every waiting write together (group commit),
//!   and a pool of read connections. One process opens a folder.
//! - [`PostgresStore`]: one PostgreSQL database shared by several Switchboard nodes.
//!   Each write is a transaction of its own on a pooled connection (PostgreSQL groups
//!   the commits of concurrent transactions itself), retried when it loses a
//!   serialization race.
//!
//! **Leases**: an execution is taken by a worker with a lease token and expiry; every
//! checkpoint must present the token, so a worker whose lease expired and was taken
//! over cannot write over the new holder's work.

pub mod bus;
pub mod claims;
pub mod cluster;
pub mod deploy;
mod error;
pub mod jobs;
pub mod outbound;
mod postgres;
mod records;
pub mod schedule;
mod sql;
mod sqlite;

use async_trait::async_trait;
use switchboard_core::ids::{LeaseToken, NodeId};
use switchboard_core::{ExecutionId, Timestamp};

pub use bus::BusStore;
pub use claims::ClaimStore;
pub use cluster::{Cluster, Heartbeat, NodeRecord, Signal};
pub use deploy::DeployStore;
pub use error::StoreError;
pub use jobs::JobRecord;
pub use outbound::OutboundStore;
pub use postgres::{Copied, PostgresStore};
pub use records::{
    AlertChange, AlertState, Checkpoint, Checkpointed, ConcurrencyGroup, Control, DedupeKey, End,
    Enqueued, ErrorRecord, ExecutionDetail, ExecutionFilter, ExecutionStatus, ExecutionSummary,
    Finish, LeasedExecution, LogLevel, LogRecord, NewExecution, Outcome, Page, Parent, Pruned,
    QueuedFlow, Slots, StepRecord, StepStatus, ThrottleGroup, WindowStats,
};
pub use schedule::ScheduleStore;
pub use sqlite::SqliteStore;

/// Everything Switchboard keeps durably.
#[async_trait]
pub trait Store:
    OutboundStore + BusStore + DeployStore + ScheduleStore + ClaimStore + Send + Sync + 'static
{
    /// Stores a new queued execution; when this returns, it is durable. With a dedupe
    /// key that a live key of the flow already holds, nothing is queued and the answer
    /// names the execution holding it.
    async fn enqueue(&self, new: NewExecution) -> Result<Enqueued, StoreError>;

    /// Leases up to `slots` executions runnable at `now` (queued, or waiting and due),
    /// as many flows and deliveries as each pool has room for, to `node` until
    /// `expires_at`, oldest first, skipping an execution while one
    /// before it in its ordering sequence has not ended, and while its concurrency group
    /// runs as many as its limit.
    async fn lease(
        &self,
        node: &NodeId,
        slots: Slots,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Vec<LeasedExecution>, StoreError>;

    /// Extends leases still held; returns the executions whose lease was lost.
    async fn renew(
        &self,
        leases: Vec<(ExecutionId, LeaseToken)>,
        expires_at: Timestamp,
    ) -> Result<Vec<ExecutionId>, StoreError>;

    /// Records step results and log lines, and the end of the lease when
    /// [`Checkpoint::end`] is set. Fails with [`StoreError::LeaseLost`] when the lease
    /// is no longer held. When the execution was asked to cancel, the records are kept,
    /// the execution ends `cancelled` and the answer is [`Checkpointed::Cancelled`].
    async fn checkpoint(&self, checkpoint: Checkpoint) -> Result<Checkpointed, StoreError>;

    /// Gives executions back to the queue (at shutdown), keeping their checkpoints.
    async fn release(&self, leases: Vec<(ExecutionId, LeaseToken)>) -> Result<(), StoreError>;

    /// Queues again every execution whose lease expired before `now`.
    async fn requeue_expired(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// At start-up, queues again the executions leased by processes that are gone. For a
    /// store only one process can open (SQLite), that is every lease not held by `node`.
    async fn recover_orphans(&self, node: &NodeId) -> Result<u64, StoreError>;

    /// One execution with its steps and log.
    async fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionDetail>, StoreError>;

    /// How an execution stands (state, output, `respond` answer), without its records.
    async fn outcome(&self, id: &ExecutionId) -> Result<Option<Outcome>, StoreError>;

    /// Asks for a signed POST of the execution's answer to `url` when it ends; `false`,
    /// asking nothing, when it has already ended (or does not exist).
    async fn hand_off(&self, id: &ExecutionId, url: &str) -> Result<bool, StoreError>;

    /// Executions matching `filter`, newest first, after `cursor` when given.
    async fn executions(
        &self,
        filter: ExecutionFilter,
        limit: usize,
        cursor: Option<ExecutionId>,
    ) -> Result<Page<ExecutionSummary>, StoreError>;

    /// The earliest time after `now` at which a waiting execution becomes runnable.
    async fn next_run_at(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError>;

    /// The executions runnable at `now` that no worker has taken yet, per flow.
    async fn queue(&self, now: Timestamp) -> Result<Vec<QueuedFlow>, StoreError>;

    /// What ended within `flows` of `integration` since `since`.
    async fn window_stats(
        &self,
        integration: &str,
        flows: &[String],
        since: Timestamp,
    ) -> Result<WindowStats, StoreError>;

    /// Every alert state recorded.
    async fn alert_states(&self) -> Result<Vec<AlertState>, StoreError>;

    /// Records an alert's new state and queues its notifications, in one transaction.
    /// Returns `false`, writing and queuing nothing, when the alert already is in that
    /// state (or, never recorded, is not firing).
    async fn change_alert(&self, change: AlertChange) -> Result<bool, StoreError>;

    /// Queues a failed execution again at its failed step, keeping the outputs of the
    /// steps before it and giving that step a fresh set of attempts.
    async fn retry_failed(&self, id: &ExecutionId) -> Result<Control, StoreError>;

    /// Cancels a queued or retrying execution at once; a running one is marked and
    /// stops at its next checkpoint, which answers [`Checkpointed::Cancelled`].
    async fn cancel(&self, id: &ExecutionId) -> Result<Control, StoreError>;

    /// Deletes up to `limit` executions that ended before `ended_before` (with their step
    /// records and logs), and up to `limit` de-duplication keys expired at `now`.
    async fn prune(
        &self,
        ended_before: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Pruned, StoreError>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// How this node hears from the other nodes sharing the store (their wake-ups, and
    /// whether it leads); `None` for a store one process owns, where it always leads.
    fn cluster(&self) -> Option<Cluster>;

    /// Records a node's heartbeat.
    async fn heartbeat(&self, heartbeat: Heartbeat) -> Result<(), StoreError>;

    /// The nodes heard from at or after `since`, with the leases each holds, by id.
    async fn nodes(&self, since: Timestamp) -> Result<Vec<NodeRecord>, StoreError>;

    /// Saves a bulk job's progress.
    async fn save_job(&self, job: JobRecord) -> Result<(), StoreError>;

    /// A bulk job's progress as last saved, whichever node runs it.
    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
}
