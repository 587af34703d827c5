//! Bulk jobs: retry or replay every execution a filter matches, or resend every failed
//! delivery to an endpoint in a window (a recover), in the background, with progress
//! that can be read while it runs.
//!
//! The targets are listed first (a snapshot, so replays that match the filter are not
//! picked up again), then handled one by one, on the node that started the job. Its
//! progress is kept in memory and saved to the store as it goes (at each state and
//! every [`SAVE_EVERY`] targets), so that every node sharing the store answers for it.
//! A job whose node stops stays where it was saved; running the same job again is
//! harmless (a retry skips what is no longer failed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use switchboard_core::ids::{EndpointId, JobId};
use switchboard_core::{ExecutionId, Timestamp};
use switchboard_store::{Control, ExecutionFilter, JobRecord, StoreError};

use crate::Engine;
use crate::outbound::OutboundError;

/// What a bulk job does to each execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Resume a failed execution from its failed step.
    Retry,
    /// Start a new execution with the same trigger.
    Replay,
    /// Deliver a failed delivery's message to its endpoint again.
    Resend,
}

/// What a bulk job works through.
#[derive(Debug, Clone)]
enum Targets {
    /// The executions a filter matches.
    Executions(ExecutionFilter),
    /// An endpoint's failed deliveries of messages accepted in `[since, until)`.
    FailedDeliveries {
        endpoint: EndpointId,
        since: Timestamp,
        until: Timestamp,
    },
}

/// The progress of a bulk job.
#[derive(Debug, Clone, Serialize)]
pub struct BulkJob {
    /// Its id.
    pub id: JobId,
    /// What it does.
    pub action: BulkAction,
    /// `listing`, `running` or `done`.
    pub state: &'static str,
    /// How many executions matched, once listed.
    pub total: Option<u64>,
    /// How many were handled so far.
    pub processed: u64,
    /// How many were retried, replayed or resent.
    pub applied: u64,
    /// How many a retry left alone: they had not failed (any more).
    pub skipped: u64,
    /// How many could not be handled (the store failed).
    pub failed: u64,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// The bulk jobs of this process.
#[derive(Default)]
pub(crate) struct BulkJobs {
    jobs: Mutex<HashMap<JobId, BulkJob>>,
}

impl BulkJobs {
    /// Changes the job, and answers it as it is now.
    fn update(&self, id: &JobId, change: impl FnOnce(&mut BulkJob)) -> Option<BulkJob> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let job = jobs.get_mut(id)?;
        change(job);
        Some(job.clone())
    }
}

impl BulkAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Replay => "replay",
            Self::Resend => "resend",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Retry, Self::Replay, Self::Resend]
            .into_iter()
            .find(|action| action.as_str() == text)
    }
}

/// The states a job goes through.
const STATES: [&str; 3] = ["listing", "running", "done"];

impl BulkJob {
    fn record(&self, node: &str) -> JobRecord {
        JobRecord {
            id: self.id.to_string(),
            action: self.action.as_str().to_owned(),
            state: self.state.to_owned(),
            total: self.total,
            processed: self.processed,
            applied: self.applied,
            skipped: self.skipped,
            failed: self.failed,
            started_at: self.started_at,
            finished_at: self.finished_at,
            node: node.to_owned(),
        }
    }

    fn from_record(record: JobRecord) -> Option<Self> {
        Some(Self {
            id: record.id.parse().ok()?,
            action: BulkAction::parse(&record.action)?,
            state: STATES.into_iter().find(|state| *state == record.state)?,
            total: record.total,
            processed: record.processed,
            applied: record.applied,
            skipped: record.skipped,
            failed: record.failed,
            started_at: record.started_at,
            finished_at: record.finished_at,
        })
    }
}

/// How many executions one listing page holds.
const PAGE: usize = 500;

/// Every how many targets a running job saves its progress.
const SAVE_EVERY: u64 = 100;

impl Engine {
    /// Starts a bulk job over the executions `filter` matches; its progress is read with
    /// [`Engine::bulk_job`].
    pub fn start_bulk(self: &Arc<Self>, action: BulkAction, filter: ExecutionFilter) -> BulkJob {
        self.start_job(action, Targets::Executions(filter))
    }

    /// Starts a job that resends every delivery to `endpoint` that failed for good, of
    /// messages accepted in `[since, until)`; its progress is read with
    /// [`Engine::bulk_job`].
    pub fn start_recover(
        self: &Arc<Self>,
        endpoint: EndpointId,
        since: Timestamp,
        until: Timestamp,
    ) -> BulkJob {
        let targets = Targets::FailedDeliveries {
            endpoint,
            since,
            until,
        };
        self.start_job(BulkAction::Resend, targets)
    }

    fn start_job(self: &Arc<Self>, action: BulkAction, targets: Targets) -> BulkJob {
        let job = BulkJob {
            id: JobId::generate(),
            action,
            state: "listing",
            total: None,
            processed: 0,
            applied: 0,
            skipped: 0,
            failed: 0,
            started_at: Timestamp::now(),
            finished_at: None,
        };
        self.bulk
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(job.id.clone(), job.clone());
        let engine = Arc::clone(self);
        let id = job.id.clone();
        tokio::spawn(async move {
            engine.progress(&id, |_| true, |_| {}).await;
            engine.run_bulk(&id, action, targets).await;
        });
        job
    }

    /// The progress of a bulk job: as it is now when this node runs it, else as the node
    /// that runs it last saved it.
    pub async fn bulk_job(&self, id: &JobId) -> Result<Option<BulkJob>, StoreError> {
        let local = self
            .bulk
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        if local.is_some() {
            return Ok(local);
        }
        Ok(self
            .store
            .job(id.as_str())
            .await?
            .and_then(BulkJob::from_record))
    }

    /// Changes a job of this node, saving it to the store when `save` says so.
    async fn progress(
        &self,
        id: &JobId,
        save: impl Fn(&BulkJob) -> bool,
        change: impl FnOnce(&mut BulkJob),
    ) {
        let Some(job) = self.bulk.update(id, change) else {
            return;
        };
        if save(&job)
            && let Err(error) = self.store.save_job(job.record(self.node.as_str())).await
        {
            tracing::warn!(%error, job = %id, "Could not save a bulk job's progress.");
        }
    }

    async fn run_bulk(&self, id: &JobId, action: BulkAction, targets: Targets) {
        let listed = match &targets {
            Targets::Executions(filter) => self
                .list_all(filter.clone())
                .await
                .map(|ids| ids.into_iter().map(|id| (id, None)).collect::<Vec<_>>()),
            Targets::FailedDeliveries {
                endpoint,
                since,
                until,
            } => self
                .store
                .failed_deliveries(endpoint, *since, *until)
                .await
                .map(|deliveries| {
                    deliveries
                        .into_iter()
                        .map(|delivery| (delivery.execution_id, Some(delivery.message_id)))
                        .collect()
                }),
        };
        let job_endpoint = match &targets {
            Targets::FailedDeliveries { endpoint, .. } => Some(endpoint.clone()),
            Targets::Executions(_) => None,
        };
        let targets = match listed {
            Ok(targets) => targets,
            Err(error) => {
                tracing::error!(%error, job = %id, "Could not list the executions of a bulk job.");
                self.progress(
                    id,
                    |_| true,
                    |job| {
                        job.state = "done";
                        job.failed = 1;
                        job.finished_at = Some(Timestamp::now());
                    },
                )
                .await;
                return;
            }
        };
        self.progress(
            id,
            |_| true,
            |job| {
                job.state = "running";
                job.total = Some(targets.len() as u64);
            },
        )
        .await;
        for (target, message) in targets {
            let outcome = match (action, message) {
                (BulkAction::Retry, _) => self
                    .retry(&target)
                    .await
                    .map(|control| control == Control::Applied),
                (BulkAction::Replay, _) => self.replay(&target).await.map(|new| new.is_some()),
                (BulkAction::Resend, message) => match (message, &job_endpoint) {
                    (Some(message), Some(endpoint)) => {
                        match self.resend(&message, endpoint, Some(target)).await {
                            Ok(_) => Ok(true),
                            Err(OutboundError::Store(error)) => Err(error),
                            Err(_) => Ok(false),
                        }
                    }
                    _ => Ok(false),
                },
            };
            let every = |job: &BulkJob| job.processed.is_multiple_of(SAVE_EVERY);
            self.progress(id, every, |job| {
                job.processed += 1;
                match outcome {
                    Ok(true) => job.applied += 1,
                    Ok(false) => job.skipped += 1,
                    Err(_) => job.failed += 1,
                }
            })
            .await;
        }
        self.progress(
            id,
            |_| true,
            |job| {
                job.state = "done";
                job.finished_at = Some(Timestamp::now());
            },
        )
        .await;
    }

    /// Every execution `filter` matches, oldest first.
    async fn list_all(&self, filter: ExecutionFilter) -> Result<Vec<ExecutionId>, StoreError> {
        let mut ids = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.store.executions(filter.clone(), PAGE, cursor).await?;
            ids.extend(page.items.into_iter().map(|item| item.id));
            match page.next_cursor.and_then(|next| next.parse().ok()) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        ids.reverse();
        Ok(ids)
    }
}
