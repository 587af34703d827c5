//! The scheduler: fires `schedule` flows on time, durably, once.
//!
//! - [`Engine::sync_schedules`] hands the project's schedules to the store (at start and
//!   at each reload); an unchanged schedule keeps its stored next fire, so fires missed
//!   while no process ran are found.
//! - [`watch`] sleeps until the earliest next fire (the store keeps schedules ordered by
//!   it; nothing scans every schedule), then claims what is due in batches: for each
//!   schedule, [`plan`] says which fire times to run under its `catch_up` policy, and the
//!   store moves its next fire on (compare-and-set) and records each fire under its
//!   deterministic key (flow and scheduled time) in the transaction that queues its
//!   execution. Two processes, or a restart at the fire instant, cannot fire it twice.
//! - `overlap: skip` has the store skip a fire while a run of the flow has not ended;
//!   `overlap: queue` puts the runs in one ordering sequence, so each waits for the last.
//! - [`Engine::run_schedule`] fires one by hand; [`Engine::pause_schedule`] pauses and
//!   resumes (a resumed schedule goes on from now: what it missed while paused stays
//!   missed).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::{ExecutionId, Timestamp};
use switchboard_project::schedule::ON_TIME;
use switchboard_project::{CatchUp, Flow, Overlap, ScheduleTrigger};
use switchboard_store::schedule::{Fire, FireOutcome, ScheduleDefinition, ScheduleRecord};
use switchboard_store::{NewExecution, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// How many due schedules one claim takes.
const BATCH: usize = 256;

/// The longest the scheduler sleeps without looking at the store (for schedules another
/// process resumed or changed).
const IDLE: Duration = Duration::from_secs(30);

/// The next fire time stored for a schedule that never fires again.
const NEVER: Timestamp = Timestamp(i64::MAX);

/// Why a fire is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireKind {
    /// At its time (up to a minute late).
    Scheduled,
    /// Missed while no process ran, run now under `catch_up`.
    CatchUp,
    /// Asked for through the API.
    Manual,
}

impl FireKind {
    /// The kind as the trigger data says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::CatchUp => "catch_up",
            Self::Manual => "manual",
        }
    }
}

/// Which fires of a schedule to run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The fire times to run, in order, with why.
    pub fires: Vec<(Timestamp, FireKind)>,
    /// How many due fire times are dropped.
    pub missed: u64,
    /// The next fire time after now.
    pub next_fire_at: Timestamp,
}

/// The fires of `schedule` due by `now`, counting from its stored `next_fire_at`.
pub fn plan(schedule: &ScheduleTrigger, next_fire_at: Timestamp, now: Timestamp) -> Plan {
    let keep = match schedule.catch_up {
        CatchUp::All => usize::try_from(schedule.max_catch_up).unwrap_or(usize::MAX),
        CatchUp::None | CatchUp::Latest => 1,
    };
    let due = schedule.timing.fires_between(next_fire_at, now, keep);
    let kind = |at: Timestamp| {
        if now.duration_since(at) <= ON_TIME {
            FireKind::Scheduled
        } else {
            FireKind::CatchUp
        }
    };
    let mut fires: Vec<(Timestamp, FireKind)> =
        due.times.iter().map(|at| (*at, kind(*at))).collect();
    if schedule.catch_up == CatchUp::None {
        fires.retain(|(_, kind)| *kind == FireKind::Scheduled);
    }
    Plan {
        missed: due.total - fires.len() as u64,
        fires,
        next_fire_at: schedule.timing.next_after(now).unwrap_or(NEVER),
    }
}

/// A schedule with its definition in the project.
#[derive(Debug, Clone)]
pub struct ScheduleView {
    /// What the store keeps.
    pub record: ScheduleRecord,
    /// The flow it starts.
    pub flow: Arc<Flow>,
}

impl ScheduleView {
    /// The schedule's settings.
    pub fn trigger(&self) -> Option<&ScheduleTrigger> {
        self.flow.trigger.schedule()
    }

    /// Its next `count` fire times (none while paused).
    pub fn next_fires(&self, count: usize) -> Vec<Timestamp> {
        let Some(trigger) = self.trigger() else {
            return Vec::new();
        };
        if self.record.paused || self.record.next_fire_at == NEVER {
            return Vec::new();
        }
        let mut fires = vec![self.record.next_fire_at];
        while fires.len() < count {
            match fires
                .last()
                .and_then(|last| trigger.timing.next_after(*last))
            {
                Some(next) => fires.push(next),
                None => break,
            }
        }
        fires
    }
}

/// A fire asked for by hand could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No flow of that name is started by a schedule.
    #[error("no schedule `{0}`")]
    NotFound(String),
    /// `overlap: skip`, and a run has not ended.
    #[error("the schedule's last run, {0}, has not ended and its overlap is skip")]
    Running(ExecutionId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Hands the project's schedules to the store and wakes the scheduler.
    pub async fn sync_schedules(&self) {
        let now = Timestamp::now();
        let project = self.project();
        let schedules = project
            .integrations
            .values()
            .flat_map(|integration| integration.flows.values())
            .filter_map(|flow| {
                let schedule = flow.trigger.schedule()?;
                Some(ScheduleDefinition {
                    integration: flow.integration.clone(),
                    flow: flow.name.clone(),
                    timing: schedule.timing.describe(),
                    next_fire_at: schedule.timing.next_after(now).unwrap_or(NEVER),
                })
            })
            .collect();
        match self.store.sync_schedules(schedules).await {
            Ok(()) => self.schedules_changed.notify_one(),
            Err(error) => tracing::error!(%error, "Could not set up the schedules."),
        }
    }

    /// The schedule of `integration`/`flow`, when the project and the store have it.
    pub async fn schedule(
        &self,
        integration: &str,
        flow: &str,
    ) -> Result<Option<ScheduleView>, StoreError> {
        let Some(flow) = self.schedule_flow(integration, flow) else {
            return Ok(None);
        };
        let record = self.store.schedule(integration, &flow.name).await?;
        Ok(record.map(|record| ScheduleView { record, flow }))
    }

    /// Pauses a schedule, or resumes it from now; `None` when there is none.
    pub async fn pause_schedule(
        &self,
        integration: &str,
        flow: &str,
        paused: bool,
    ) -> Result<Option<ScheduleView>, StoreError> {
        let Some(flow) = self.schedule_flow(integration, flow) else {
            return Ok(None);
        };
        let Some(schedule) = flow.trigger.schedule() else {
            return Ok(None);
        };
        let next = schedule
            .timing
            .next_after(Timestamp::now())
            .unwrap_or(NEVER);
        let record = self
            .store
            .pause_schedule(integration, &flow.name, paused, next)
            .await?;
        if record.is_some() {
            tracing::info!(integration, flow = %flow.name, paused, "Schedule paused or resumed.");
            self.schedules_changed.notify_one();
        }
        Ok(record.map(|record| ScheduleView { record, flow }))
    }

    /// Fires a schedule now, by hand, under its overlap policy.
    pub async fn run_schedule(
        &self,
        integration: &str,
        flow: &str,
    ) -> Result<ExecutionId, RunError> {
        let not_found = || RunError::NotFound(format!("{integration}/{flow}"));
        let view = self
            .schedule(integration, flow)
            .await?
            .ok_or_else(not_found)?;
        let schedule = view.trigger().ok_or_else(not_found)?;
        let now = Timestamp::now();
        let execution = self.fire_execution(
            &view.flow,
            schedule,
            (now, FireKind::Manual),
            view.record.last_success_at,
        );
        let fire = Fire {
            integration: integration.to_owned(),
            flow: view.flow.name.clone(),
            claimed: None,
            next_fire_at: None,
            executions: vec![execution],
            skip_if_running: schedule.overlap == Overlap::Skip,
        };
        let outcome = self.store.fire(vec![fire]).await?.pop();
        match outcome {
            Some(FireOutcome::Fired(mut ids)) if !ids.is_empty() => {
                self.metrics.schedule_fires(integration, "manual", 1);
                self.wake.notify_one();
                Ok(ids.remove(0))
            }
            Some(FireOutcome::Skipped { running }) => Err(RunError::Running(running)),
            _ => Err(not_found()),
        }
    }

    /// Claims and queues every fire due by `now`; answers how many executions it queued.
    pub async fn fire_due(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut queued = 0;
        loop {
            let due = self.store.due_schedules(now, BATCH).await?;
            if due.is_empty() {
                return Ok(queued);
            }
            let project = self.project();
            let mut fires = Vec::with_capacity(due.len());
            let mut plans = Vec::with_capacity(due.len());
            for record in &due {
                let flow = project.flow(&record.integration, &record.flow);
                let Some((flow, schedule)) =
                    flow.and_then(|flow| Some((flow, flow.trigger.schedule()?)))
                else {
                    // Its flow went away and the store has not heard yet: move it on so
                    // it is not due again before the next sync drops it.
                    fires.push(Fire {
                        integration: record.integration.clone(),
                        flow: record.flow.clone(),
                        claimed: Some(record.next_fire_at),
                        next_fire_at: Some(NEVER),
                        executions: Vec::new(),
                        skip_if_running: false,
                    });
                    plans.push(None);
                    continue;
                };
                let plan = plan(schedule, record.next_fire_at, now);
                let executions = plan
                    .fires
                    .iter()
                    .map(|fire| self.fire_execution(flow, schedule, *fire, record.last_success_at))
                    .collect();
                fires.push(Fire {
                    integration: record.integration.clone(),
                    flow: record.flow.clone(),
                    claimed: Some(record.next_fire_at),
                    next_fire_at: Some(plan.next_fire_at),
                    executions,
                    skip_if_running: schedule.overlap == Overlap::Skip,
                });
                plans.push(Some(plan));
            }
            let outcomes = self.store.fire(fires).await?;
            let queued_at = Timestamp::now();
            for ((record, plan), outcome) in due.iter().zip(&plans).zip(outcomes) {
                let Some(plan) = plan else { continue };
                queued += self.report_fire(record, plan, &outcome, queued_at);
            }
            if queued > 0 {
                self.wake.notify_one();
            }
            if due.len() < BATCH {
                return Ok(queued);
            }
        }
    }

    /// Logs and counts what became of one schedule's fires; answers how many executions
    /// they queued.
    fn report_fire(
        &self,
        record: &ScheduleRecord,
        plan: &Plan,
        outcome: &FireOutcome,
        queued_at: Timestamp,
    ) -> usize {
        let integration = record.integration.as_str();
        if plan.missed > 0 {
            tracing::warn!(integration, flow = %record.flow, missed = plan.missed, "Schedule fires were missed and are not caught up.");
            self.metrics
                .schedule_fires(integration, "missed", plan.missed);
        }
        match outcome {
            // Every one of them was fired before (its key holds): nothing new to count.
            FireOutcome::Fired(ids) if ids.is_empty() => 0,
            FireOutcome::Fired(ids) => {
                for (at, kind) in &plan.fires {
                    if *kind == FireKind::Scheduled {
                        self.metrics
                            .schedule_lateness(queued_at.duration_since(*at));
                        self.metrics.schedule_fires(integration, "fired", 1);
                    } else {
                        self.metrics.schedule_fires(integration, "caught_up", 1);
                    }
                }
                if plan
                    .fires
                    .iter()
                    .any(|(_, kind)| *kind == FireKind::CatchUp)
                {
                    tracing::info!(integration, flow = %record.flow, fires = ids.len(), "Caught up schedule fires missed while no process ran.");
                }
                ids.len()
            }
            FireOutcome::Skipped { running } => {
                tracing::info!(integration, flow = %record.flow, %running, "Schedule fire skipped: the last run has not ended.");
                self.metrics
                    .schedule_fires(integration, "skipped", plan.fires.len() as u64);
                0
            }
            FireOutcome::Lost => 0,
        }
    }

    /// The execution one fire starts.
    fn fire_execution(
        &self,
        flow: &Flow,
        schedule: &ScheduleTrigger,
        (scheduled_at, kind): (Timestamp, FireKind),
        last_success_at: Option<Timestamp>,
    ) -> NewExecution {
        let fired_at = Timestamp::now();
        let data = json!({
            "scheduled_at": scheduled_at.to_rfc3339(),
            "fired_at": fired_at.to_rfc3339(),
            "last_success_at": last_success_at.map_or(Value::Null, |at| Value::String(at.to_rfc3339())),
        });
        let mut trigger = data.clone();
        if let Value::Object(fields) = &mut trigger {
            fields.insert("kind".into(), json!("schedule"));
            fields.insert("fire".into(), json!(kind.as_str()));
            fields.insert(
                "fire_id".into(),
                json!(format!(
                    "{}/{}@{}",
                    flow.integration,
                    flow.name,
                    scheduled_at.to_rfc3339()
                )),
            );
        }
        let mut new = self.prepare_or_plain(flow, trigger, data);
        new.scheduled_at = Some(scheduled_at);
        if schedule.overlap == Overlap::Queue && new.ordering_key.is_none() {
            new.ordering_key = Some(String::from("schedule"));
        }
        new
    }

    /// The flow of `integration` named `flow`, when a schedule starts it.
    fn schedule_flow(&self, integration: &str, flow: &str) -> Option<Arc<Flow>> {
        let project = self.project();
        let flow = project.flow(integration, flow)?;
        flow.trigger.schedule().is_some().then(|| Arc::clone(flow))
    }
}

/// Fires schedules until shutdown, while this node leads (see the module docs).
pub(crate) async fn watch(engine: Arc<Engine>, shutdown: CancellationToken) {
    loop {
        if !engine.until_leading(&shutdown).await {
            return;
        }
        if let Err(error) = engine.fire_due(Timestamp::now()).await {
            tracing::error!(%error, "Could not fire due schedules.");
        }
        let wait = match engine.store.next_fire_at().await {
            Ok(Some(next)) => next.duration_since(Timestamp::now()).min(IDLE),
            Ok(None) => IDLE,
            Err(error) => {
                tracing::error!(%error, "Could not read the next schedule fire.");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = engine.schedules_changed.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use switchboard_project::Timing;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn hourly(catch_up: CatchUp, max_catch_up: u32) -> ScheduleTrigger {
        ScheduleTrigger {
            timing: Timing::cron("0 * * * *", "UTC").unwrap(),
            catch_up,
            max_catch_up,
            overlap: Overlap::Skip,
        }
    }

    #[test]
    fn an_on_time_fire_runs_under_every_policy() {
        for catch_up in [CatchUp::None, CatchUp::Latest, CatchUp::All] {
            let plan = plan(
                &hourly(catch_up, 100),
                at("2026-11-23T10:00:00Z"),
                at("2026-11-23T10:00:00.020Z"),
            );
            assert_eq!(
                plan.fires,
                [(at("2026-11-23T10:00:00Z"), FireKind::Scheduled)]
            );
            assert_eq!(plan.missed, 0);
            assert_eq!(plan.next_fire_at, at("2026-11-23T11:00:00Z"));
        }
    }

    #[test]
    fn after_downtime_each_policy_runs_what_it_says() {
        // Down from before 06:00 until 10:30: 06:00 to 10:00 were missed (5 fires).
        let (stored, now) = (at("2026-11-23T06:00:00Z"), at("2026-11-23T10:30:00Z"));
        let none = plan(&hourly(CatchUp::None, 100), stored, now);
        assert_eq!(none.fires, []);
        assert_eq!(none.missed, 5);
        let latest = plan(&hourly(CatchUp::Latest, 100), stored, now);
        assert_eq!(
            latest.fires,
            [(at("2026-11-23T10:00:00Z"), FireKind::CatchUp)]
        );
        assert_eq!(latest.missed, 4);
        let all = plan(&hourly(CatchUp::All, 100), stored, now);
        assert_eq!(all.fires.len(), 5);
        assert_eq!(all.fires[0], (stored, FireKind::CatchUp));
        assert_eq!(all.missed, 0);
        let bounded = plan(&hourly(CatchUp::All, 2), stored, now);
        assert_eq!(
            bounded.fires,
            [
                (at("2026-11-23T09:00:00Z"), FireKind::CatchUp),
                (at("2026-11-23T10:00:00Z"), FireKind::CatchUp)
            ]
        );
        assert_eq!(bounded.missed, 3);
        for plan in [none, latest, all, bounded] {
            assert_eq!(plan.next_fire_at, at("2026-11-23T11:00:00Z"));
        }
    }

    #[test]
    fn nothing_due_yet_plans_nothing() {
        let plan = plan(
            &hourly(CatchUp::All, 100),
            at("2026-11-23T11:00:00Z"),
            at("2026-11-23T10:59:59Z"),
        );
        assert_eq!(plan.fires, []);
        assert_eq!(plan.missed, 0);
        assert_eq!(plan.next_fire_at, at("2026-11-23T11:00:00Z"));
    }
}
