//! What the store keeps, in the shape the API shows it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::ids::LeaseToken;
use switchboard_core::{ExecutionId, Timestamp};
use utoipa::ToSchema;

use crate::bus::{NewEvent, StateChange};

/// The state of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Waiting for a worker.
    Queued,
    /// Leased by a worker.
    Running,
    /// A step failed in a way that may pass; the execution waits for its next attempt
    /// (`next_attempt_at`), holding no worker.
    Retrying,
    /// Asleep in a `sleep` step until `resumes_at`, holding no worker.
    Waiting,
    /// Every step finished.
    Succeeded,
    /// A step failed.
    Failed,
    /// Stopped by an operator.
    Cancelled,
}

impl ExecutionStatus {
    /// Every status.
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Running,
        Self::Retrying,
        Self::Waiting,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status of that name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether the execution has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// How many executions of each pool a lease may take: flows, and the built-in
/// deliveries (outbound webhooks and callbacks), which have workers of their own so that
/// slow subscriber endpoints never hold up flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// Executions of the project's flows.
    pub flows: usize,
    /// Executions of the built-in `_webhooks` integration.
    pub deliveries: usize,
}

impl Slots {
    /// `count` of each.
    pub fn each(count: usize) -> Self {
        Self {
            flows: count,
            deliveries: count,
        }
    }
}

/// A new execution to queue.
#[derive(Debug, Clone)]
pub struct NewExecution {
    /// Its id, made by the caller so it can be answered at once.
    pub id: ExecutionId,
    /// The integration.
    pub integration: String,
    /// The flow.
    pub flow: String,
    /// `$trigger`: what started it (kind and details such as headers).
    pub trigger: Value,
    /// `.`: the trigger's data.
    pub input: Value,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// When set, the execution is queued only if no other execution of the flow holds
    /// the same key.
    pub dedupe: Option<DedupeKey>,
    /// The execution this one replays.
    pub replay_of: Option<ExecutionId>,
    /// The concurrency group it counts in, when its flow has a limit.
    pub concurrency: Option<ConcurrencyGroup>,
    /// The sequence it runs in, one after another in arrival order.
    pub ordering_key: Option<String>,
    /// Its debounce group: it supersedes the group's waiting executions and waits
    /// `not_before` for a later one to supersede it.
    pub debounce_key: Option<String>,
    /// When it may start, if later than its acceptance.
    pub not_before: Option<Timestamp>,
    /// Its throttle group, when its flow has a rate.
    pub throttle: Option<ThrottleGroup>,
    /// The execution that started it (a `call` step, a dispatch).
    pub parent: Option<Parent>,
    /// The fire time of the schedule fire that started it.
    pub scheduled_at: Option<Timestamp>,
}

/// The execution that started another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// Its id.
    pub id: ExecutionId,
    /// Whether it waits for the child: the child's end wakes it.
    pub waits: bool,
}

/// A throttle group: at most `count` of its executions start per `per`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleGroup {
    /// The group's key within the flow (empty: the whole flow).
    pub key: String,
    /// How many starts.
    pub count: u32,
    /// In how long.
    pub per: std::time::Duration,
}

impl NewExecution {
    /// A new execution of `integration`/`flow`, accepted now, with no keys.
    pub fn new(integration: &str, flow: &str, trigger: Value, input: Value) -> Self {
        Self {
            id: ExecutionId::generate(),
            integration: integration.to_owned(),
            flow: flow.to_owned(),
            trigger,
            input,
            created_at: Timestamp::now(),
            dedupe: None,
            replay_of: None,
            concurrency: None,
            ordering_key: None,
            debounce_key: None,
            not_before: None,
            throttle: None,
            parent: None,
            scheduled_at: None,
        }
    }
}

/// A concurrency group: at most `limit` of its executions run at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyGroup {
    /// The group's key within the flow (empty: the whole flow).
    pub key: String,
    /// How many may run at once.
    pub limit: u32,
}

/// A de-duplication key of a new execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeKey {
    /// The key, unique per flow while it lives.
    pub key: String,
    /// When the key stops holding.
    pub expires_at: Timestamp,
}

/// What [`Store::enqueue`](crate::Store::enqueue) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The queued execution, or for a duplicate the one that holds its key.
    pub id: ExecutionId,
    /// Whether another execution already held the key, so nothing was queued.
    pub duplicate: bool,
}

/// An execution handed to a worker.
#[derive(Debug, Clone)]
pub struct LeasedExecution {
    /// Its id.
    pub id: ExecutionId,
    /// The lease to present with every checkpoint.
    pub lease: LeaseToken,
    /// The integration.
    pub integration: String,
    /// The flow.
    pub flow: String,
    /// `$trigger`.
    pub trigger: Value,
    /// `.`.
    pub input: Value,
    /// How many times it has been leased, this time included.
    pub attempt: u32,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// How many failed attempts each step has had so far, by step id.
    pub failed_attempts: BTreeMap<String, u32>,
    /// Steps that finished in earlier attempts, in order; the run resumes after them.
    pub finished_steps: Vec<StepRecord>,
    /// The next free step record number.
    pub next_step_seq: u32,
    /// The next free log line number.
    pub next_log_seq: u32,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// It produced its output.
    Succeeded,
    /// It failed.
    Failed,
    /// Its `when` condition was false, so it did not run.
    Skipped,
    /// It started something the execution waits for (a called flow); a later record of
    /// the same step says how that ended.
    Waiting,
}

impl StepStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Waiting => "waiting",
        }
    }
}

/// A failure, as recorded on a step or an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorRecord {
    /// A stable code, e.g. `http_status`, `expression_failed`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The step it happened in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// One step's run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepRecord {
    /// The record's number within the execution.
    #[serde(skip)]
    pub seq: u32,
    /// The step's id.
    #[serde(rename = "id")]
    pub step_id: String,
    /// The step's kind.
    pub kind: String,
    /// How it ended.
    pub status: StepStatus,
    /// The step's attempt, from 1.
    pub attempt: u32,
    /// What the step worked on (the resolved request, message, …).
    pub input: Value,
    /// What it produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// When it ended.
    #[schema(value_type = String, format = DateTime)]
    pub finished_at: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
}

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Ordinary information.
    Info,
    /// Something a person should look at.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// The level as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "warn" => Self::Warn,
            "error" => Self::Error,
            _ => Self::Info,
        }
    }
}

/// One line of an execution's log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogRecord {
    /// The line's number within the execution.
    #[serde(skip)]
    pub seq: u32,
    /// When it was written.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// How important it is.
    pub level: LogLevel,
    /// The step that wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The text.
    pub message: String,
}

impl LogRecord {
    pub(crate) fn from_row(
        seq: u32,
        at: i64,
        level: &str,
        step: Option<String>,
        message: String,
    ) -> Self {
        Self {
            seq,
            at: Timestamp(at),
            level: LogLevel::parse(level),
            step,
            message,
        }
    }
}

/// The end of an execution.
#[derive(Debug, Clone)]
pub struct Finish {
    /// `succeeded` or `failed`.
    pub status: ExecutionStatus,
    /// Why it failed.
    pub error: Option<ErrorRecord>,
    /// The output of its last step, when it succeeded.
    pub output: Option<Value>,
}

/// How a lease ends, when it does.
#[derive(Debug, Clone)]
pub enum End {
    /// The execution reached its end.
    Finished(Finish),
    /// A step failed in a way that may pass: the execution is `retrying` until `at`,
    /// then runnable again, resuming at that step.
    Retry {
        /// When the next attempt may start.
        at: Timestamp,
        /// The failure it retries after.
        error: ErrorRecord,
    },
    /// A `sleep` step started, or a `call` waits for its child: the execution is
    /// `waiting` until `at`, or until one of `awaiting` ends, then runnable again.
    Wait {
        /// When it resumes at the latest.
        at: Timestamp,
        /// The child executions whose end wakes it.
        awaiting: Vec<ExecutionId>,
    },
}

/// What a worker writes after each step, and at the end.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The execution.
    pub execution: ExecutionId,
    /// The lease it holds.
    pub lease: LeaseToken,
    /// Step records not yet written.
    pub steps: Vec<StepRecord>,
    /// Log lines not yet written.
    pub logs: Vec<LogRecord>,
    /// Set when the lease ends: the execution finished, or waits for a retry.
    pub end: Option<End>,
    /// Executions queued in the same transaction (an `on_error` flow's, at a failure).
    pub follow_ups: Vec<NewExecution>,
    /// Events the steps published, appended in the same transaction.
    pub events: Vec<NewEvent>,
    /// Changes the steps made to flow and integration state, in the same transaction.
    pub state: Vec<StateChange>,
    /// The answer of a `respond` step for a synchronous caller (`status`, `headers`,
    /// `body`); the first one written stays.
    pub response: Option<Value>,
}

/// One execution, as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecutionSummary {
    /// Its id.
    #[schema(value_type = String, example = "exe_01JD3Q1Y0R8Z3T6V9W2X5A7B4C")]
    pub id: ExecutionId,
    /// The integration.
    pub integration: String,
    /// The flow.
    pub flow: String,
    /// Its state.
    pub status: ExecutionStatus,
    /// How many times it was leased.
    pub attempt: u32,
    /// When it was accepted.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When a worker first took it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// The execution this one replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub replay_of: Option<ExecutionId>,
    /// The execution that started this one (a `call` step, a dispatch); its children
    /// are listed by `?parent_id=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<ExecutionId>,
    /// When the next attempt starts, while `retrying`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    /// When it wakes, while `waiting`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resumes_at: Option<Timestamp>,
    /// Why it failed (or, while `retrying`, why the last attempt failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
}

/// One execution with everything recorded about it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecutionDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    /// `$trigger`.
    pub trigger: Value,
    /// `.`.
    pub input: Value,
    /// The output of its last step, once it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The answer a `respond` step gave its synchronous caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// Every step record, in order.
    pub steps: Vec<StepRecord>,
    /// The log.
    pub log: Vec<LogRecord>,
}

/// How an execution stands, without its records: what a synchronous caller waits for.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its state.
    pub status: ExecutionStatus,
    /// Why it failed.
    pub error: Option<ErrorRecord>,
    /// The output of its last step, once it succeeded.
    pub output: Option<Value>,
    /// The answer of its `respond` step, once one ran.
    pub response: Option<Value>,
}

/// Which executions to list.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Only this integration.
    pub integration: Option<String>,
    /// Only this flow.
    pub flow: Option<String>,
    /// Only this state.
    pub status: Option<ExecutionStatus>,
    /// Only those accepted at or after this time.
    pub since: Option<Timestamp>,
    /// Only those accepted before this time.
    pub until: Option<Timestamp>,
    /// Only those whose error has this code.
    pub error_code: Option<String>,
    /// Only those this execution started.
    pub parent_id: Option<ExecutionId>,
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts, when there is one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` items read: an extra item only says that a next page
    /// exists, which starts after the `cursor` of the last item kept.
    pub fn overfetched(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Self {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

/// The executions of one flow that wait for a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedFlow {
    /// The integration.
    pub integration: String,
    /// The flow.
    pub flow: String,
    /// How many are runnable now.
    pub depth: u64,
    /// Since when the oldest of them has been runnable.
    pub oldest_runnable_since: Timestamp,
}

/// What ended within a window, for alert conditions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Executions that ended (succeeded or failed).
    pub finished: u64,
    /// Of those, the failed ones.
    pub failed: u64,
    /// The 95th percentile of their time from acceptance to end, in milliseconds.
    pub p95_ms: Option<i64>,
}

/// An alert's state as last recorded.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlertState {
    /// The integration.
    pub integration: String,
    /// The alert's name.
    pub alert: String,
    /// Whether it is firing.
    pub firing: bool,
    /// Since when it has been in this state.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    /// What was observed at the change, for a person.
    pub summary: String,
}

/// A change of an alert's state, with the executions that notify of it.
#[derive(Debug, Clone)]
pub struct AlertChange {
    /// The new state.
    pub state: AlertState,
    /// Executions of the alert's notify flows, queued with the change.
    pub notifications: Vec<NewExecution>,
}

/// What an operator's retry or cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Done: the execution is queued again, or cancelled.
    Applied,
    /// The execution is running: it stops at its next checkpoint.
    CancelRequested,
    /// Not possible in the execution's state.
    WrongStatus(ExecutionStatus),
    /// No such execution.
    NotFound,
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpointed {
    /// Written; the worker goes on.
    Saved,
    /// Written, and the execution ended `cancelled` as an operator asked: the worker stops.
    Cancelled,
}

/// What one pruning batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Ended executions, with their step records and logs.
    pub executions: u64,
    /// Expired de-duplication keys.
    pub dedupe_keys: u64,
    /// Outbound messages whose deliveries were all pruned.
    pub messages: u64,
    /// Events deleted.
    pub events: u64,
}
