//! What the store keeps of schedules: each schedule's next fire time (ordered, so the
//! scheduler reads only the next one due, never every schedule), whether it is paused,
//! and each fire, keyed by flow and scheduled time.
//!
//! A fire is claimed by moving the schedule's next fire time on from the time the
//! claimer read (compare-and-set), and recorded under its key in the same transaction
//! that queues its execution: no restart, crash or second process can fire it twice.

use async_trait::async_trait;
use switchboard_core::{ExecutionId, Timestamp};

use crate::StoreError;
use crate::records::{NewExecution, Page};

/// A schedule of the project, as the scheduler hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleDefinition {
    /// The integration.
    pub integration: String,
    /// The flow.
    pub flow: String,
    /// Its timing as written (`cron 0 2 * * * UTC`): a change resets the next fire.
    pub timing: String,
    /// Its next fire time from now, used when it is new or its timing changed.
    pub next_fire_at: Timestamp,
}

/// A schedule as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    /// The integration.
    pub integration: String,
    /// The flow.
    pub flow: String,
    /// Its timing as written.
    pub timing: String,
    /// When it fires next (while paused: when it would have).
    pub next_fire_at: Timestamp,
    /// Whether it is paused.
    pub paused: bool,
    /// The scheduled time of its last fire.
    pub last_fire_at: Option<Timestamp>,
    /// The scheduled time of its last run that succeeded.
    pub last_success_at: Option<Timestamp>,
}

/// Which schedules to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleFilter {
    /// Only this integration's.
    pub integration: Option<String>,
    /// Only those after this `integration/flow` (a page's cursor).
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// Fires of one schedule, claimed together.
#[derive(Debug, Clone)]
pub struct Fire {
    /// The integration.
    pub integration: String,
    /// The flow.
    pub flow: String,
    /// The next fire time the claimer read; the claim fails when it moved meanwhile.
    /// `None` for a fire asked for by hand, which claims nothing.
    pub claimed: Option<Timestamp>,
    /// The next fire time after these fires.
    pub next_fire_at: Option<Timestamp>,
    /// One execution per fire, each with its `scheduled_at`.
    pub executions: Vec<NewExecution>,
    /// Skip the fires (recording them as skipped) when an execution of the flow has not
    /// ended.
    pub skip_if_running: bool,
}

/// What became of a [`Fire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// Its executions are queued.
    Fired(Vec<ExecutionId>),
    /// An execution of the flow had not ended; nothing was queued.
    Skipped {
        /// The execution still going.
        running: ExecutionId,
    },
    /// Another claimer took these fires first, or the schedule is gone or paused.
    Lost,
}

/// One fire of a schedule, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireRecord {
    /// When it was due.
    pub scheduled_at: Timestamp,
    /// When it was claimed.
    pub fired_at: Timestamp,
    /// `fired`, `caught_up` or `skipped`.
    pub outcome: String,
    /// The execution it started, unless skipped.
    pub execution_id: Option<ExecutionId>,
}

/// Schedules, in the store.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Makes the stored schedules those of `schedules`: new ones start at their
    /// `next_fire_at`, changed ones restart there, unchanged ones keep their next fire
    /// (so fires missed while no process ran are caught up) and their pause, and those
    /// not listed are dropped.
    async fn sync_schedules(&self, schedules: Vec<ScheduleDefinition>) -> Result<(), StoreError>;

    /// Schedules by integration and flow.
    async fn schedules(&self, filter: ScheduleFilter) -> Result<Page<ScheduleRecord>, StoreError>;

    /// One schedule.
    async fn schedule(
        &self,
        integration: &str,
        flow: &str,
    ) -> Result<Option<ScheduleRecord>, StoreError>;

    /// Up to `limit` schedules not paused whose next fire is at or before `now`, the
    /// earliest first.
    async fn due_schedules(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// The earliest next fire of the schedules not paused.
    async fn next_fire_at(&self) -> Result<Option<Timestamp>, StoreError>;

    /// Claims and records `fires` in one transaction.
    async fn fire(&self, fires: Vec<Fire>) -> Result<Vec<FireOutcome>, StoreError>;

    /// Pauses a schedule, or resumes it at `next_fire_at` (fires while it was paused
    /// are not caught up). `None` when there is no such schedule.
    async fn pause_schedule(
        &self,
        integration: &str,
        flow: &str,
        paused: bool,
        next_fire_at: Timestamp,
    ) -> Result<Option<ScheduleRecord>, StoreError>;

    /// A schedule's last `limit` fires, the latest first.
    async fn fires(
        &self,
        integration: &str,
        flow: &str,
        limit: usize,
    ) -> Result<Vec<FireRecord>, StoreError>;
}
