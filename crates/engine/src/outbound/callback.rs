//! Callbacks: a synchronous caller that stopped waiting (it got `202`) and left a
//! callback URL gets the execution's answer posted there once the execution ends.
//!
//! The store queues an execution of `_webhooks/callback` in the commit that ends the
//! called execution. Each attempt posts `{execution_id, integration, flow, status,
//! response}` signed the Standard Webhooks way with the flow's `callback.secret`
//! (`webhook-id` is the called execution's id, so a repeat can be told), through the
//! address guard of outbound webhooks, retried on their default schedule.

use serde_json::json;
use switchboard_core::{ExecutionId, Timestamp};
use switchboard_store::{
    Checkpoint, Checkpointed, End, ErrorRecord, ExecutionStatus, Finish, LeasedExecution, LogLevel,
    LogRecord, StepRecord,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::deliver::post;
use super::signing;
use crate::Engine;
use crate::invoke::answer_of;

/// The step id of every attempt in the callback's execution record.
const STEP: &str = "callback";

/// Runs one attempt of a leased callback and records how it went.
pub(crate) async fn run(engine: &Engine, leased: LeasedExecution, stop: CancellationToken) {
    let span = tracing::info_span!(
        "callback",
        execution_id = %leased.id,
        called_execution_id = leased.input["execution_id"].as_str().unwrap_or(""),
        attempt = leased.attempt,
    );
    async {
        let _running = engine
            .metrics
            .execution_started(&leased.integration, &leased.flow, "callback");
        let mut logs = Vec::new();
        let mut steps = Vec::new();
        let end = tokio::select! {
            end = attempt(engine, &leased, &mut logs, &mut steps) => Some(end),
            () = stop.cancelled() => None,
        };
        let outcome = match &end {
            Some(End::Finished(finish)) => Some(finish.status.as_str()),
            None => Some("cancelled"),
            Some(_) => None,
        };
        let checkpoint = Checkpoint {
            execution: leased.id.clone(),
            lease: leased.lease.clone(),
            steps,
            logs,
            end,
            follow_ups: Vec::new(),
            events: Vec::new(),
            state: Vec::new(),
            response: None,
        };
        match engine.store.checkpoint(checkpoint).await {
            Ok(Checkpointed::Saved | Checkpointed::Cancelled) => {
                if let Some(outcome) = outcome {
                    engine.metrics.execution_finished(
                        &leased.integration,
                        &leased.flow,
                        "callback",
                        outcome,
                        Timestamp::now().duration_since(leased.created_at),
                    );
                }
            }
            Err(error) => {
                tracing::warn!(%error, "Could not record how the callback went; it will run again.");
            }
        }
    }
    .instrument(span)
    .await;
}

/// Sends one attempt; says how the callback's execution goes on.
async fn attempt(
    engine: &Engine,
    leased: &LeasedExecution,
    logs: &mut Vec<LogRecord>,
    steps: &mut Vec<StepRecord>,
) -> End {
    let mut log = |level, message: String| {
        logs.push(LogRecord {
            seq: leased.next_log_seq + u32::try_from(logs.len()).unwrap_or(0),
            at: Timestamp::now(),
            level,
            step: Some(STEP.to_owned()),
            message,
        });
    };
    let fail = |code: &str, message: String| {
        End::Finished(Finish {
            status: ExecutionStatus::Failed,
            error: Some(ErrorRecord {
                code: code.to_owned(),
                message,
                step: Some(STEP.to_owned()),
            }),
            output: None,
        })
    };
    let url = leased.input["url"].as_str().unwrap_or_default().to_owned();
    let called: Option<ExecutionId> = leased.input["execution_id"]
        .as_str()
        .and_then(|id| id.parse().ok());
    let Some(called) = called else {
        return fail(
            "invalid_callback",
            String::from("the callback names no execution"),
        );
    };
    let detail = match engine.store.execution(&called).await {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            return fail(
                "execution_not_found",
                format!("the execution {called} no longer exists"),
            );
        }
        Err(error) => {
            log(
                LogLevel::Warn,
                format!("could not read the execution: {error}"),
            );
            return End::Retry {
                at: Timestamp::now().after(std::time::Duration::from_secs(5)),
                error: ErrorRecord {
                    code: String::from("store_unavailable"),
                    message: error.to_string(),
                    step: Some(STEP.to_owned()),
                },
            };
        }
    };
    let summary = &detail.summary;
    let secret = engine
        .project()
        .flow(&summary.integration, &summary.flow)
        .and_then(|flow| {
            flow.trigger
                .request()?
                .sync
                .as_ref()?
                .callback_secret
                .clone()
        });
    let Some(secret) = secret else {
        return fail(
            "no_callback_secret",
            format!(
                "the flow `{}/{}` no longer has a `callback.secret` to sign with",
                summary.integration, summary.flow
            ),
        );
    };
    let secret = match engine.verify_secrets(&summary.integration, &[secret]) {
        Ok(mut secrets) => secrets.pop().unwrap_or_default(),
        Err(error) => return fail("invalid_secret", format!("the callback secret: {error}")),
    };
    let outcome = switchboard_store::Outcome {
        status: summary.status,
        error: summary.error.clone(),
        output: detail.output.clone(),
        response: detail.response.clone(),
    };
    let response = answer_of(&called, &outcome).map(|answer| answer.to_json());
    let body = json!({
        "execution_id": called,
        "integration": summary.integration,
        "flow": summary.flow,
        "status": summary.status,
        "response": response,
    })
    .to_string();
    let now = Timestamp::now();
    let timestamp = now.millis().div_euclid(1000);
    let signature = match signing::signature_header(
        &[secret.as_str()],
        called.as_str(),
        timestamp,
        body.as_bytes(),
    ) {
        Ok(signature) => signature,
        Err(error) => return fail("invalid_secret", format!("the callback secret: {error}")),
    };
    let headers = vec![
        (String::from("webhook-id"), called.to_string()),
        (String::from("webhook-timestamp"), timestamp.to_string()),
        (String::from("webhook-signature"), signature),
        (
            String::from("content-type"),
            String::from("application/json"),
        ),
    ];
    let attempt = leased.failed_attempts.get(STEP).copied().unwrap_or(0) + 1;
    let exchange = post(engine, &url, &headers, body).await;
    let input = engine
        .secrets
        .redact_json(&json!({"method": "POST", "url": url}));
    steps.push(exchange.record(leased.next_step_seq, STEP, input, attempt, now));
    let Some((kind, failure)) = exchange.failure.clone() else {
        log(
            LogLevel::Info,
            format!("called back {url} (attempt {attempt})"),
        );
        return End::Finished(Finish {
            status: ExecutionStatus::Succeeded,
            error: None,
            output: None,
        });
    };
    let schedule = &engine.config.outbound.retry_schedule;
    match exchange.retry(schedule, attempt, kind, &failure, STEP) {
        Ok((retry, line)) => {
            log(LogLevel::Warn, line);
            retry
        }
        Err(last) => {
            log(LogLevel::Error, last.clone());
            fail("attempts_exhausted", last)
        }
    }
}
