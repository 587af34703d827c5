//! One execution: its steps in order, checkpointed as they finish.
//!
//! A step with an effect outside the execution (`http`, `publish`, `state`, `files`,
//! `call`, `sleep`) is committed before the next starts. A step that only computes
//! (`transform`, `log`, `respond`, a `when` that skips, an `if` or `switch` decision, the
//! end of a `parallel` or `for_each`) is committed with the next checkpoint, at the
//! latest once [`MAX_UNCOMMITTED`] records wait: after a crash it runs again, and since
//! nothing outside saw it, no one can tell. A `respond` answers its caller once
//! committed, so its record is committed before a step with an effect starts.

mod blocks;
mod call;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_core::{ExecutionId, HumanDuration, Timestamp};
use switchboard_expr::Scope;
use switchboard_project::{Flow, Step, StepKind};
use switchboard_store::bus::{NewEvent, StateChange};
use switchboard_store::{
    Checkpoint, Checkpointed, End, ErrorRecord, ExecutionStatus, Finish, LeasedExecution, LogLevel,
    LogRecord, NewExecution, StepRecord, StepStatus, StoreError,
};
use switchboard_telemetry::{TraceContext, otel};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Engine;
use crate::steps::{self, StepContext, StepError, StepOutcome};

/// The most step and log records that wait for the next checkpoint: a long run of steps
/// that only compute is committed in parts this big.
const MAX_UNCOMMITTED: usize = 64;

/// Whether a step only computes: running it again after a crash changes nothing outside
/// the execution, so its record need not be committed before the next step starts.
fn only_computes(kind: &StepKind) -> bool {
    matches!(
        kind,
        StepKind::Transform(_) | StepKind::Log(_) | StepKind::Respond(_)
    )
}

/// Runs a leased execution to its end, or until its lease is lost or `stop` (an
/// operator's cancel) fires.
pub(crate) async fn run(engine: &Engine, leased: LeasedExecution, stop: CancellationToken) {
    let flow = engine
        .project()
        .runnable_flow(&leased.integration, &leased.flow)
        .cloned();
    let trigger = flow.as_ref().map_or("unknown", |flow| flow.trigger.kind());
    let inbound = inbound_trace(&leased);
    let span = tracing::info_span!(
        "execution",
        execution_id = %leased.id,
        integration = %leased.integration,
        flow = %leased.flow,
        attempt = leased.attempt,
        trace_id = tracing::field::Empty,
    );
    let trace = otel::attach(&span, inbound.as_ref())
        .or(inbound)
        .unwrap_or_else(|| TraceContext::root(leased.id.to_bytes()));
    span.record("trace_id", trace.trace_id());
    async {
        let _running = engine.metrics.execution_started(&leased.integration, &leased.flow, trigger);
        let timeout = flow.as_ref().and_then(|flow| flow.timeout);
        let run = ExecutionRun::new(engine, &leased, trigger, timeout, trace, stop);
        let result = match flow {
            Some(flow) => run.flow(&flow).await,
            None => Err(RunError::Failed(ErrorRecord {
                code: String::from("flow_not_found"),
                message: format!("the project has no flow `{}` in integration `{}`", leased.flow, leased.integration),
                step: None,
            })),
        };
        let end = match result {
            Ok(output) => {
                let output = Some(engine.secrets.redact_json(&output));
                Some(End::Finished(Finish { status: ExecutionStatus::Succeeded, error: None, output }))
            }
            Err(RunError::Failed(error)) => {
                tracing::info!(code = %error.code, step = error.step.as_deref().unwrap_or(""), "Execution failed.");
                Some(End::Finished(Finish { status: ExecutionStatus::Failed, error: Some(error), output: None }))
            }
            Err(RunError::Retry { at, error }) => {
                tracing::info!(code = %error.code, step = error.step.as_deref().unwrap_or(""), next_attempt_at = %at, "Step failed; it will be tried again.");
                Some(End::Retry { at, error })
            }
            Err(RunError::Wait { at, awaiting }) => {
                tracing::info!(resumes_at = %at, awaiting = awaiting.len(), "Execution waits.");
                Some(End::Wait { at, awaiting })
            }
            // The store ends the execution `cancelled` at this checkpoint.
            Err(RunError::CancelRequested) => None,
            Err(RunError::Cancelled) => {
                run.cancelled();
                return;
            }
            Err(RunError::Lost(error)) => {
                tracing::warn!(%error, "Execution abandoned.");
                return;
            }
        };
        let outcome = match &end {
            Some(End::Finished(finish)) => Some(finish.status.as_str()),
            _ => None,
        };
        match run.write(end).await {
            Ok(Checkpointed::Cancelled) => run.cancelled(),
            Ok(Checkpointed::Saved) => {
                if let Some(outcome) = outcome {
                    run.finished(outcome);
                }
            }
            Err(error) => tracing::warn!(%error, "Could not record how the execution went on; it will run again."),
        }
    }
    .instrument(span)
    .await;
}

/// The trace the execution's webhook carried in `traceparent`, if any.
///
/// An execution continues it. Without one, it starts a trace: the exporter's when spans
/// are exported, else one whose id is the execution id's 128 bits, so the two can be
/// found from each other.
fn inbound_trace(leased: &LeasedExecution) -> Option<TraceContext> {
    leased.trigger["headers"][TraceContext::HEADER]
        .as_str()
        .and_then(TraceContext::parse)
}

/// Why a run stopped before its end.
#[derive(Debug)]
enum RunError {
    /// A step failed: the execution fails.
    Failed(ErrorRecord),
    /// A step failed in a way that may pass: it is tried again at `at`.
    Retry {
        /// When.
        at: Timestamp,
        /// The failure.
        error: ErrorRecord,
    },
    /// A `sleep` step, or a `call` waiting for its child: the execution resumes at
    /// `at`, or when one of `awaiting` ends.
    Wait {
        /// When, at the latest.
        at: Timestamp,
        /// The children whose end wakes it.
        awaiting: Vec<ExecutionId>,
    },
    /// The store refused a checkpoint: the execution is someone else's now, or will be.
    Lost(StoreError),
    /// An operator cancelled the execution here: the running step was stopped.
    CancelRequested,
    /// The store ended the execution `cancelled` at a checkpoint.
    Cancelled,
}

impl RunError {
    /// Of two ways branches running side by side stopped, the one the execution
    /// stops by: losing the lease, then a cancel, then a failure; two waits become
    /// the earlier one, waking for the children of both (a retry taking precedence
    /// over a wait: its resume looks at the children again).
    fn worse(self, other: Self) -> Self {
        fn rank(error: &RunError) -> u8 {
            match error {
                RunError::Lost(_) => 5,
                RunError::Cancelled => 4,
                RunError::CancelRequested => 3,
                RunError::Failed(_) => 2,
                RunError::Retry { .. } => 1,
                RunError::Wait { .. } => 0,
            }
        }
        match (self, other) {
            (Self::Retry { at, error }, Self::Retry { at: other, .. })
            | (Self::Retry { at, error }, Self::Wait { at: other, .. })
            | (Self::Wait { at: other, .. }, Self::Retry { at, error }) => Self::Retry {
                at: at.min(other),
                error,
            },
            (
                Self::Wait { at, mut awaiting },
                Self::Wait {
                    at: other,
                    awaiting: more,
                },
            ) => {
                awaiting.extend(more);
                Self::Wait {
                    at: at.min(other),
                    awaiting,
                }
            }
            (first, second) => {
                if rank(&second) > rank(&first) {
                    second
                } else {
                    first
                }
            }
        }
    }
}

/// What the run has done and not yet written.
#[derive(Default)]
struct Pending {
    steps: Vec<StepRecord>,
    logs: Vec<LogRecord>,
    events: Vec<NewEvent>,
    state: Vec<StateChange>,
    /// Executions started by `call` steps.
    children: Vec<NewExecution>,
    /// The answer of the first `respond` step.
    response: Option<Value>,
    next_step_seq: u32,
    next_log_seq: u32,
}

/// Where a list of steps runs: the prefix of its records' ids (`lines[3].` inside the
/// fourth item of the `for_each` step `lines`) and the values its expressions read.
#[derive(Clone)]
struct Frame {
    prefix: String,
    scope: Scope,
}

/// A finished step of an earlier lease, found again on resume.
struct Done {
    status: StepStatus,
    output: Value,
}

/// The state of one execution while it runs. Branches of `parallel` and items of
/// `for_each` run side by side in the execution's task and share it.
struct ExecutionRun<'a> {
    engine: &'a Engine,
    leased: &'a LeasedExecution,
    /// The flow's trigger kind, for metrics.
    trigger: &'static str,
    trace: TraceContext,
    stop: CancellationToken,
    /// The steps finished in earlier leases, by record id.
    done: HashMap<String, Done>,
    /// The execution's timeout and the time it runs out.
    deadline: Option<(Duration, Timestamp)>,
    pending: Mutex<Pending>,
}

impl<'a> ExecutionRun<'a> {
    fn new(
        engine: &'a Engine,
        leased: &'a LeasedExecution,
        trigger: &'static str,
        timeout: Option<Duration>,
        trace: TraceContext,
        stop: CancellationToken,
    ) -> Self {
        let done = leased
            .finished_steps
            .iter()
            .map(|step| {
                let output = step.output.clone().unwrap_or(Value::Null);
                (
                    step.step_id.clone(),
                    Done {
                        status: step.status,
                        output,
                    },
                )
            })
            .collect();
        let deadline = timeout.map(|timeout| (timeout, leased.created_at.after(timeout)));
        Self {
            engine,
            leased,
            trigger,
            trace,
            stop,
            done,
            deadline,
            pending: Mutex::new(Pending {
                next_step_seq: leased.next_step_seq,
                next_log_seq: leased.next_log_seq,
                ..Pending::default()
            }),
        }
    }

    /// The scope of the flow's top-level steps.
    fn root_frame(&self) -> Frame {
        let leased = self.leased;
        let execution = json!({
            "id": leased.id.as_str(),
            "integration": leased.integration,
            "flow": leased.flow,
            "attempt": leased.attempt,
        });
        Frame {
            prefix: String::new(),
            scope: self.engine.scope(
                &leased.integration,
                &leased.input,
                &leased.trigger,
                &execution,
            ),
        }
    }

    /// Runs the flow; returns the output of its last step that ran.
    async fn flow(&self, flow: &Flow) -> Result<Value, RunError> {
        let mut frame = self.root_frame();
        self.steps(flow, &flow.steps, &mut frame).await
    }

    /// Runs a list of steps in `frame`; returns the output of the last one that ran.
    fn steps<'s>(
        &'s self,
        flow: &'s Flow,
        steps: &'s [Step],
        frame: &'s mut Frame,
    ) -> Pin<Box<dyn Future<Output = Result<Value, RunError>> + Send + 's>> {
        Box::pin(async move {
            let mut last = Value::Null;
            for step in steps {
                if let Some(output) = self.step(flow, step, frame).await? {
                    last = output;
                }
            }
            Ok(last)
        })
    }

    /// Runs one step; `None` when it was skipped.
    async fn step(
        &self,
        flow: &Flow,
        step: &Step,
        frame: &mut Frame,
    ) -> Result<Option<Value>, RunError> {
        let record_id = format!("{}{}", frame.prefix, step.id);
        let done = self.done.get(&record_id);
        if done.is_some_and(|done| done.status == StepStatus::Skipped) {
            return Ok(None);
        }
        if done.is_none()
            && let Some(when) = &step.when
        {
            let started_at = Timestamp::now();
            match when.eval_one(&frame.scope, &self.engine.config.expression_limits) {
                Ok(Value::Null | Value::Bool(false)) => {
                    let input = json!({"when": when.source()});
                    self.record(
                        step,
                        &record_id,
                        StepStatus::Skipped,
                        input,
                        None,
                        None,
                        started_at,
                        1,
                    );
                    self.computed().await?;
                    return Ok(None);
                }
                Ok(_) => {}
                Err(source) => {
                    let error = StepError::Expression {
                        what: "when",
                        source,
                    };
                    return Err(self.failed(
                        step,
                        &record_id,
                        json!({"when": when.source()}),
                        &error,
                        started_at,
                    ));
                }
            }
        }
        match &step.kind {
            StepKind::If(block) => self
                .if_step(flow, step, &record_id, block, frame)
                .await
                .map(Some),
            StepKind::Switch(block) => self
                .switch_step(flow, step, &record_id, block, frame)
                .await
                .map(Some),
            StepKind::Parallel(branches) => self
                .parallel(flow, step, &record_id, branches, frame)
                .await
                .map(Some),
            StepKind::ForEach(block) => {
                if let Some(done) = done {
                    frame.scope.set_step(&step.id, &done.output);
                    return Ok(Some(done.output.clone()));
                }
                self.for_each(flow, step, &record_id, block, frame)
                    .await
                    .map(Some)
            }
            StepKind::Sleep(sleep) => {
                let until = match done {
                    Some(done) => done.output["until"]
                        .as_str()
                        .and_then(Timestamp::parse_rfc3339),
                    None => Some(self.start_sleep(step, &record_id, sleep, frame)?),
                };
                if let Some(until) = until
                    && until > Timestamp::now()
                {
                    return Err(RunError::Wait {
                        at: until,
                        awaiting: Vec::new(),
                    });
                }
                let output = done.map_or(Value::Null, |done| done.output.clone());
                frame.scope.set_step(&step.id, &output);
                Ok(Some(output))
            }
            StepKind::Call(call) => {
                let output = match done {
                    Some(done) if done.status == StepStatus::Succeeded => done.output.clone(),
                    Some(done) => self.call_ended(step, &record_id, call, done).await?,
                    None => self.call(step, &record_id, call, frame).await?,
                };
                frame.scope.set_step(&step.id, &output);
                Ok(Some(output))
            }
            _ => {
                if let Some(done) = done {
                    frame.scope.set_step(&step.id, &done.output);
                    return Ok(Some(done.output.clone()));
                }
                let output = self.leaf(flow, step, &record_id, &frame.scope).await?;
                frame.scope.set_step(&step.id, &output);
                Ok(Some(output))
            }
        }
    }

    /// Runs a step that does one thing, with its retries, and checkpoints it.
    async fn leaf(
        &self,
        flow: &Flow,
        step: &Step,
        record_id: &str,
        scope: &Scope,
    ) -> Result<Value, RunError> {
        let remaining = self
            .deadline
            .map(|(_, at)| at.duration_since(Timestamp::now()));
        if let (Some((timeout, _)), Some(Duration::ZERO)) = (self.deadline, remaining) {
            return Err(timed_out(&step.id, timeout));
        }
        let context = StepContext {
            execution: &self.leased.id,
            integration: &self.leased.integration,
            flow: &self.leased.flow,
            step: record_id,
            scope,
            limits: &self.engine.config.expression_limits,
            http: &self.engine.http,
            max_response_body: self.engine.config.max_response_body,
            metrics: &self.engine.metrics,
            trace: &self.trace,
            store: self.engine.store.as_ref(),
            files: self.engine.files.as_ref(),
            max_file_bytes: self.engine.config.max_file_bytes,
        };
        let only_computes = only_computes(&step.kind);
        if !only_computes && self.lock().response.is_some() {
            // The caller has waited long enough: answer before the effect.
            self.checkpoint(None).await?;
        }
        let kind = step.kind.name();
        let attempt = self
            .leased
            .failed_attempts
            .get(record_id)
            .copied()
            .unwrap_or(0)
            + 1;
        let started_at = Timestamp::now();
        let started = Instant::now();
        let running = async {
            match steps::run(&step.kind, &context).await {
                Some(outcome) => outcome,
                None => StepOutcome::new(
                    Value::Null,
                    Err(StepError::Invalid(format!(
                        "`{kind}` is not a step that runs by itself"
                    ))),
                ),
            }
        }
        .instrument(tracing::info_span!("step", step = %record_id, kind));
        let out_of_time = async {
            match remaining {
                Some(remaining) => tokio::time::sleep(remaining).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            outcome = running => outcome,
            () = self.stop.cancelled() => {
                self.log(LogLevel::Warn, Some(record_id), String::from("stopped: the execution was cancelled"));
                return Err(RunError::CancelRequested);
            }
            () = out_of_time => {
                let timeout = self.deadline.map_or(Duration::ZERO, |(timeout, _)| timeout);
                self.log(LogLevel::Error, Some(record_id), format!("stopped: the execution's timeout of {} is over", HumanDuration(timeout)));
                return Err(timed_out(&step.id, timeout));
            }
        };
        for (level, message) in &outcome.logs {
            tracing::info!(step = %record_id, "{}", self.engine.secrets.redact(message));
            self.log(*level, Some(record_id), message.clone());
        }
        let failure = outcome
            .result
            .as_ref()
            .err()
            .map(|error| step_error(record_id, error));
        let (status, output) = match &outcome.result {
            Ok(output) => (StepStatus::Succeeded, Some(output.clone())),
            Err(_) => (
                StepStatus::Failed,
                outcome.response.as_ref().map(truncated_answer),
            ),
        };
        self.engine.metrics.step_finished(
            &self.leased.integration,
            &self.leased.flow,
            kind,
            status.as_str(),
            started.elapsed(),
        );
        if status == StepStatus::Succeeded {
            let mut pending = self.lock();
            pending.events.extend(outcome.events);
            pending.state.extend(outcome.state);
            if let (StepKind::Respond(_), Ok(answer)) = (&step.kind, &outcome.result) {
                pending.response.get_or_insert_with(|| answer.clone());
            }
        }
        self.record(
            step,
            record_id,
            status,
            outcome.input,
            output,
            failure.clone(),
            started_at,
            attempt,
        );
        if let Some(error) = failure {
            let policy = flow.retry_policy(step);
            let retryable = outcome.result.as_ref().is_err_and(StepError::is_retryable);
            if retryable && attempt < policy.attempts {
                let wait = retry_after(outcome.response.as_ref(), policy.max)
                    .unwrap_or_else(|| policy.delay(attempt, random_unit()));
                self.log(
                    LogLevel::Warn,
                    Some(record_id),
                    format!(
                        "attempt {attempt} of {} failed: {}; next attempt in {}",
                        policy.attempts,
                        error.message,
                        HumanDuration(wait)
                    ),
                );
                self.engine.metrics.retry_scheduled(
                    &self.leased.integration,
                    &self.leased.flow,
                    kind,
                );
                let at = Timestamp::now().after(wait);
                if let Some((timeout, deadline)) = self.deadline
                    && at >= deadline
                {
                    return Err(timed_out(&step.id, timeout));
                }
                return Err(RunError::Retry { at, error });
            }
            let message = if retryable {
                format!(
                    "{} (attempt {attempt} of {}, the last)",
                    error.message, policy.attempts
                )
            } else {
                error.message.clone()
            };
            self.log(LogLevel::Error, Some(record_id), message);
            return Err(RunError::Failed(error));
        }
        let output = outcome.result.unwrap_or(Value::Null);
        if only_computes {
            self.computed().await?;
        } else {
            // An effect is committed before the next step starts.
            self.checkpoint(None).await?;
        }
        Ok(output)
    }

    /// Records a step that failed before it could run (a `when` or a block's own
    /// expression), and the failure that ends the execution.
    fn failed(
        &self,
        step: &Step,
        record_id: &str,
        input: Value,
        error: &StepError,
        started_at: Timestamp,
    ) -> RunError {
        let record = step_error(record_id, error);
        self.record(
            step,
            record_id,
            StepStatus::Failed,
            input,
            None,
            Some(record.clone()),
            started_at,
            1,
        );
        self.log(LogLevel::Error, Some(record_id), record.message.clone());
        RunError::Failed(record)
    }

    /// Records a step the executor ran itself (a block's decision or end, a `call`) as
    /// succeeded with `output`; commits it at once for a `call` (its child starts with
    /// the commit), else with the next checkpoint.
    async fn succeeded(
        &self,
        step: &Step,
        record_id: &str,
        input: Value,
        output: &Value,
        started_at: Timestamp,
    ) -> Result<(), RunError> {
        self.record(
            step,
            record_id,
            StepStatus::Succeeded,
            input,
            Some(output.clone()),
            None,
            started_at,
            1,
        );
        if matches!(step.kind, StepKind::Call(_)) {
            self.checkpoint(None).await
        } else {
            self.computed().await
        }
    }

    /// After a step that only computed: commits what waits once it is
    /// [`MAX_UNCOMMITTED`] records, else leaves it for the next checkpoint.
    async fn computed(&self) -> Result<(), RunError> {
        let waiting = {
            let pending = self.lock();
            pending.steps.len() + pending.logs.len()
        };
        if waiting >= MAX_UNCOMMITTED {
            self.checkpoint(None).await
        } else {
            Ok(())
        }
    }

    /// Adds a step record to what the next checkpoint writes.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        step: &Step,
        record_id: &str,
        status: StepStatus,
        input: Value,
        output: Option<Value>,
        error: Option<ErrorRecord>,
        started_at: Timestamp,
        attempt: u32,
    ) {
        let secrets = &self.engine.secrets;
        let finished_at = Timestamp::now();
        let mut pending = self.lock();
        let seq = pending.next_step_seq;
        pending.next_step_seq += 1;
        pending.steps.push(StepRecord {
            seq,
            step_id: record_id.to_owned(),
            kind: step.kind.name().to_owned(),
            status,
            attempt,
            input: secrets.redact_json(&input),
            output: output.map(|output| secrets.redact_json(&output)),
            error: error.map(|mut error| {
                error.message = secrets.redact(&error.message);
                error
            }),
            started_at,
            finished_at,
            duration_ms: finished_at.millis() - started_at.millis(),
        });
    }

    fn log(&self, level: LogLevel, step: Option<&str>, message: String) {
        let message = self.engine.secrets.redact(&message);
        let mut pending = self.lock();
        let seq = pending.next_log_seq;
        pending.next_log_seq += 1;
        pending.logs.push(LogRecord {
            seq,
            at: Timestamp::now(),
            level,
            step: step.map(str::to_owned),
            message,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The execution ended `cancelled`.
    fn cancelled(&self) {
        tracing::info!("Execution cancelled.");
        self.finished("cancelled");
    }

    /// Reports the end of the execution.
    fn finished(&self, outcome: &'static str) {
        let leased = self.leased;
        self.engine.metrics.execution_finished(
            &leased.integration,
            &leased.flow,
            self.trigger,
            outcome,
            Timestamp::now().duration_since(leased.created_at),
        );
    }

    /// The execution of the flow's `on_error` flow, when this one failed for good.
    fn on_error(&self, error: Option<&ErrorRecord>) -> Option<NewExecution> {
        let leased = self.leased;
        let project = self.engine.project();
        let target = project
            .flow(&leased.integration, &leased.flow)?
            .on_error
            .as_ref()?;
        let target = project.flow(&leased.integration, target)?;
        let trigger = json!({"kind": "error", "execution_id": leased.id, "flow": leased.flow});
        let input = json!({
            "execution_id": leased.id,
            "integration": leased.integration,
            "flow": leased.flow,
            "error": error,
            "trigger": self.engine.secrets.redact_json(&leased.trigger),
            "input": self.engine.secrets.redact_json(&leased.input),
            "failed_at": Timestamp::now(),
        });
        Some(self.engine.prepare_or_plain(target, trigger, input))
    }

    /// Writes everything pending (`Ok` while the execution goes on).
    async fn checkpoint(&self, end: Option<End>) -> Result<(), RunError> {
        match self.write(end).await {
            Ok(Checkpointed::Saved) => Ok(()),
            Ok(Checkpointed::Cancelled) => Err(RunError::Cancelled),
            Err(error) => Err(RunError::Lost(error)),
        }
    }

    /// Writes everything pending, and the end of the lease when `end` is set.
    async fn write(&self, end: Option<End>) -> Result<Checkpointed, StoreError> {
        let end = end.map(|mut end| {
            let error = match &mut end {
                End::Finished(finish) => finish.error.as_mut(),
                End::Retry { error, .. } => Some(error),
                End::Wait { .. } => None,
            };
            if let Some(error) = error {
                error.message = self.engine.secrets.redact(&error.message);
            }
            end
        });
        let mut follow_ups: Vec<NewExecution> = match &end {
            Some(End::Finished(Finish {
                status: ExecutionStatus::Failed,
                error,
                ..
            })) => self.on_error(error.as_ref()).into_iter().collect(),
            _ => Vec::new(),
        };
        let ends = matches!(end, Some(End::Finished(_)));
        let checkpoint = {
            let mut pending = self.lock();
            follow_ups.append(&mut pending.children);
            Checkpoint {
                execution: self.leased.id.clone(),
                lease: self.leased.lease.clone(),
                steps: std::mem::take(&mut pending.steps),
                logs: std::mem::take(&mut pending.logs),
                end,
                follow_ups,
                events: std::mem::take(&mut pending.events),
                state: std::mem::take(&mut pending.state),
                response: pending.response.take(),
            }
        };
        let wake = !checkpoint.follow_ups.is_empty();
        let answered = ends || checkpoint.response.is_some();
        let published = checkpoint.events.len();
        let checkpointed = self.engine.store.checkpoint(checkpoint).await?;
        if wake {
            self.engine.wake.notify_one();
        }
        if answered {
            self.engine.answered(&self.leased.id);
        }
        if published > 0 && checkpointed == Checkpointed::Saved {
            self.engine.metrics.events_published("flow", published);
            self.engine.bus.notify_one();
        }
        Ok(checkpointed)
    }
}

/// The failure of an execution whose timeout is over.
fn timed_out(step: &str, timeout: Duration) -> RunError {
    RunError::Failed(ErrorRecord {
        code: String::from("execution_timeout"),
        message: format!(
            "the execution did not finish within its timeout of {}",
            HumanDuration(timeout)
        ),
        step: Some(step.to_owned()),
    })
}

fn step_error(step: &str, error: &StepError) -> ErrorRecord {
    ErrorRecord {
        code: error.code().to_owned(),
        message: error.to_string(),
        step: Some(step.to_owned()),
    }
}

/// The wait a `429` or `503` answer asks for in `Retry-After` (seconds or an HTTP date),
/// when it is within `max`.
pub(crate) fn retry_after(response: Option<&Value>, max: Duration) -> Option<Duration> {
    let response = response?;
    if !matches!(response["status"].as_u64(), Some(429 | 503)) {
        return None;
    }
    let value = response["headers"]["retry-after"].as_str()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => Timestamp::parse_http_date(value)?.duration_since(Timestamp::now()),
    };
    (wait <= max).then_some(wait)
}

/// A random number in `[0, 1)`, for jitter.
pub(crate) fn random_unit() -> f64 {
    let mut bytes = [0; 8];
    // Without an OS random source, jitter falls back to the full wait.
    if getrandom::fill(&mut bytes).is_err() {
        return 1.0 - f64::EPSILON;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The most bytes of a failed attempt's answer body kept in its record.
const KEPT_FAILED_BODY: usize = 16 * 1024;

/// A failed attempt's answer for the record, its body cut to [`KEPT_FAILED_BODY`] bytes
/// (as text) with `body_truncated: true` when it was longer: an error page repeated over
/// many attempts must not fill the store.
fn truncated_answer(answer: &Value) -> Value {
    let body = &answer["body"];
    let text = match body {
        Value::String(text) => text.clone(),
        Value::Null => return answer.clone(),
        other => other.to_string(),
    };
    if text.len() <= KEPT_FAILED_BODY {
        return answer.clone();
    }
    let mut cut = KEPT_FAILED_BODY;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut kept = answer.clone();
    kept["body"] = Value::String(text[..cut].to_owned());
    kept["body_truncated"] = Value::Bool(true);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_failed_answers_are_cut_for_the_record() {
        let short = json!({"status": 500, "body": "oops"});
        assert_eq!(truncated_answer(&short), short);
        let long = json!({"status": 500, "body": "é".repeat(KEPT_FAILED_BODY)});
        let kept = truncated_answer(&long);
        assert!(kept["body"].as_str().unwrap().len() <= KEPT_FAILED_BODY);
        assert_eq!(kept["body_truncated"], true);
        assert_eq!(kept["status"], 500);
        let json_body = json!({"status": 502, "body": {"items": vec!["x"; KEPT_FAILED_BODY]}});
        assert_eq!(truncated_answer(&json_body)["body_truncated"], true);
    }
}
