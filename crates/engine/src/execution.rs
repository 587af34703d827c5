//! One execution: its steps in order, checkpointed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_core::{HumanDuration, Timestamp};
use switchboard_expr::Scope;
use switchboard_project::Flow;
use switchboard_store::{
    Checkpoint, Checkpointed, End, ErrorRecord, ExecutionStatus, Finish, LeasedExecution, LogLevel,
    LogRecord, NewExecution, StepRecord, StepStatus, StoreError,
};
use switchboard_telemetry::{TraceContext, otel};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Engine;
use crate::steps::{self, StepContext, StepError};

/// Runs a leased execution to its end, or until its lease is lost or `stop` (an
/// operator's cancel) fires.
pub(crate) async fn run(engine: &Engine, leased: LeasedExecution, stop: CancellationToken) {
    let flow = engine
        .project
        .flow(&leased.integration, &leased.flow)
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
        let mut run = ExecutionRun::new(engine, &leased, trigger, trace, stop);
        let result = match flow {
            Some(flow) => run.steps(&flow).await,
            None => Err(RunError::Failed(ErrorRecord {
                code: String::from("flow_not_found"),
                message: format!("the project has no flow `{}` in integration `{}`", leased.flow, leased.integration),
                step: None,
            })),
        };
        let end = match result {
            Ok(()) => Some(End::Finished(Finish { status: ExecutionStatus::Succeeded, error: None })),
            Err(RunError::Failed(error)) => {
                tracing::info!(code = %error.code, step = error.step.as_deref().unwrap_or(""), "Execution failed.");
                Some(End::Finished(Finish { status: ExecutionStatus::Failed, error: Some(error) }))
            }
            Err(RunError::Retry { at, error }) => {
                tracing::info!(code = %error.code, step = error.step.as_deref().unwrap_or(""), next_attempt_at = %at, "Step failed; it will be tried again.");
                Some(End::Retry { at, error })
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
        match run.checkpoint(end).await {
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
    /// The store refused a checkpoint: the execution is someone else's now, or will be.
    Lost(StoreError),
    /// An operator cancelled the execution here: the running step was stopped.
    CancelRequested,
    /// The store ended the execution `cancelled` at a checkpoint.
    Cancelled,
}

/// The state of one execution while it runs.
struct ExecutionRun<'a> {
    engine: &'a Engine,
    leased: &'a LeasedExecution,
    /// The flow's trigger kind, for metrics.
    trigger: &'static str,
    scope: Scope,
    trace: TraceContext,
    stop: CancellationToken,
    pending_steps: Vec<StepRecord>,
    pending_logs: Vec<LogRecord>,
    next_step_seq: u32,
    next_log_seq: u32,
}

impl<'a> ExecutionRun<'a> {
    fn new(
        engine: &'a Engine,
        leased: &'a LeasedExecution,
        trigger: &'static str,
        trace: TraceContext,
        stop: CancellationToken,
    ) -> Self {
        let config = engine
            .project
            .integrations
            .get(&leased.integration)
            .map_or(Value::Null, |integration| integration.config_values());
        let execution = json!({
            "id": leased.id.as_str(),
            "integration": leased.integration,
            "flow": leased.flow,
            "attempt": leased.attempt,
        });
        let mut scope = Scope::new(
            &leased.input,
            &leased.trigger,
            &config,
            &engine.secrets.to_json(),
            &execution,
        );
        for step in &leased.finished_steps {
            scope.set_step(&step.step_id, step.output.as_ref().unwrap_or(&Value::Null));
        }
        Self {
            engine,
            leased,
            trigger,
            scope,
            trace,
            stop,
            pending_steps: Vec::new(),
            pending_logs: Vec::new(),
            next_step_seq: leased.next_step_seq,
            next_log_seq: leased.next_log_seq,
        }
    }

    async fn steps(&mut self, flow: &Flow) -> Result<(), RunError> {
        let deadline = flow
            .timeout
            .map(|timeout| (timeout, self.leased.created_at.after(timeout)));
        for step in &flow.steps {
            if self.scope.has_step(&step.id) {
                continue;
            }
            let remaining = deadline.map(|(_, at)| at.duration_since(Timestamp::now()));
            let timed_out = |timeout: Duration| {
                RunError::Failed(ErrorRecord {
                    code: String::from("execution_timeout"),
                    message: format!(
                        "the execution did not finish within its timeout of {}",
                        HumanDuration(timeout)
                    ),
                    step: Some(step.id.clone()),
                })
            };
            if let (Some((timeout, _)), Some(Duration::ZERO)) = (deadline, remaining) {
                return Err(timed_out(timeout));
            }
            let context = StepContext {
                execution: &self.leased.id,
                integration: &self.leased.integration,
                flow: &self.leased.flow,
                step: &step.id,
                scope: &self.scope,
                limits: &self.engine.config.expression_limits,
                http: &self.engine.http,
                max_response_body: self.engine.config.max_response_body,
                metrics: &self.engine.metrics,
                trace: &self.trace,
            };
            let kind = step.kind.name();
            let attempt = self
                .leased
                .failed_attempts
                .get(&step.id)
                .copied()
                .unwrap_or(0)
                + 1;
            let started_at = Timestamp::now();
            let started = Instant::now();
            let running = steps::run(&step.kind, &context)
                .instrument(tracing::info_span!("step", step = %step.id, kind));
            let out_of_time = async {
                match remaining {
                    Some(remaining) => tokio::time::sleep(remaining).await,
                    None => std::future::pending().await,
                }
            };
            let outcome = tokio::select! {
                outcome = running => outcome,
                () = self.stop.cancelled() => {
                    self.log(LogLevel::Warn, Some(&step.id), String::from("stopped: the execution was cancelled"));
                    return Err(RunError::CancelRequested);
                }
                () = out_of_time => {
                    let timeout = deadline.map_or(Duration::ZERO, |(timeout, _)| timeout);
                    self.log(LogLevel::Error, Some(&step.id), format!("stopped: the execution's timeout of {} is over", HumanDuration(timeout)));
                    return Err(timed_out(timeout));
                }
            };
            let finished_at = Timestamp::now();
            for (level, message) in outcome.logs {
                tracing::info!(step = %step.id, "{}", self.engine.secrets.redact(&message));
                self.log(level, Some(&step.id), message);
            }
            let failure = outcome
                .result
                .as_ref()
                .err()
                .map(|error| step_error(&step.id, error));
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
            self.record_step(StepRecord {
                seq: 0,
                step_id: step.id.clone(),
                kind: kind.to_owned(),
                status,
                attempt,
                input: outcome.input,
                output,
                error: failure.clone(),
                started_at,
                finished_at,
                duration_ms: finished_at.millis() - started_at.millis(),
            });
            if let Some(error) = failure {
                let policy = flow.retry_policy(step);
                let retryable = outcome.result.as_ref().is_err_and(StepError::is_retryable);
                if retryable && attempt < policy.attempts {
                    let wait = retry_after(outcome.response.as_ref(), policy.max)
                        .unwrap_or_else(|| policy.delay(attempt, random_unit()));
                    self.log(
                        LogLevel::Warn,
                        Some(&step.id),
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
                    if let Some((timeout, deadline)) = deadline
                        && at >= deadline
                    {
                        return Err(timed_out(timeout));
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
                self.log(LogLevel::Error, Some(&step.id), message);
                return Err(RunError::Failed(error));
            }
            if let Ok(output) = outcome.result {
                self.scope.set_step(&step.id, &output);
            }
            // Each finished step is committed before the next starts.
            if self.checkpoint(None).await.map_err(RunError::Lost)? == Checkpointed::Cancelled {
                return Err(RunError::Cancelled);
            }
        }
        Ok(())
    }

    fn record_step(&mut self, mut record: StepRecord) {
        let secrets = &self.engine.secrets;
        record.seq = self.next_step_seq;
        self.next_step_seq += 1;
        record.input = secrets.redact_json(&record.input);
        record.output = record.output.map(|output| secrets.redact_json(&output));
        if let Some(error) = &mut record.error {
            error.message = secrets.redact(&error.message);
        }
        self.pending_steps.push(record);
    }

    fn log(&mut self, level: LogLevel, step: Option<&str>, message: String) {
        let seq = self.next_log_seq;
        self.next_log_seq += 1;
        let message = self.engine.secrets.redact(&message);
        self.pending_logs.push(LogRecord {
            seq,
            at: Timestamp::now(),
            level,
            step: step.map(str::to_owned),
            message,
        });
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
        let project = &self.engine.project;
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

    /// Writes everything pending, and the end of the lease when `end` is set.
    async fn checkpoint(&mut self, end: Option<End>) -> Result<Checkpointed, StoreError> {
        let end = end.map(|mut end| {
            let error = match &mut end {
                End::Finished(finish) => finish.error.as_mut(),
                End::Retry { error, .. } => Some(error),
            };
            if let Some(error) = error {
                error.message = self.engine.secrets.redact(&error.message);
            }
            end
        });
        let follow_ups: Vec<NewExecution> = match &end {
            Some(End::Finished(Finish {
                status: ExecutionStatus::Failed,
                error,
            })) => self.on_error(error.as_ref()).into_iter().collect(),
            _ => Vec::new(),
        };
        let wake = !follow_ups.is_empty();
        let checkpoint = Checkpoint {
            execution: self.leased.id.clone(),
            lease: self.leased.lease.clone(),
            steps: std::mem::take(&mut self.pending_steps),
            logs: std::mem::take(&mut self.pending_logs),
            end,
            follow_ups,
        };
        let checkpointed = self.engine.store.checkpoint(checkpoint).await?;
        if wake {
            self.engine.wake.notify_one();
        }
        Ok(checkpointed)
    }
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
