//! One delivery attempt: a leased execution of `_webhooks/deliver` sends its message to
//! its endpoint, signed, records the attempt, and ends succeeded, failed, or waiting for
//! its next attempt on the endpoint's schedule.
//!
//! - 2xx: delivered; the endpoint's failing streak is cleared.
//! - `410 Gone`: the endpoint is disabled at once; the delivery fails.
//! - 3xx (redirects are not followed), any other status, or no answer: the attempt
//!   failed; the next one waits per the schedule (at least what `Retry-After` asked).
//!   After the last, the delivery fails with `attempts_exhausted`. An endpoint whose
//!   attempts all failed for `disable_after` is disabled.
//!
//! The attempt is recorded before the execution's checkpoint. When the process dies in
//! between, the delivery runs again: an endpoint may see a message twice (same
//! `webhook-id`, so it can tell), never zero times.

use std::time::Instant;

use serde_json::{Map, Value, json};
use switchboard_core::Timestamp;
use switchboard_core::ids::EndpointId;
use switchboard_store::bus::NewEvent;
use switchboard_store::outbound::{
    Attempt, AttemptStatus, CALLBACK_FLOW, Endpoint, EndpointVerdict, Message,
};
use switchboard_store::{
    Checkpoint, Checkpointed, End, ErrorRecord, ExecutionStatus, Finish, LeasedExecution, LogLevel,
    LogRecord, StepRecord, StepStatus, StoreError,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{envelope, schedule, signing};
use crate::bus::{ATTEMPT_EXHAUSTED, ENDPOINT_DISABLED};
use crate::execution::{random_unit, retry_after};
use crate::{Engine, error_chain};

/// The step id of every attempt in the delivery's execution record.
const STEP: &str = "deliver";

/// The most bytes of an answer's body kept.
const KEPT_BODY: usize = 16 * 1024;

/// Runs one attempt of a leased delivery (or, for `_webhooks/callback`, a callback) and
/// records how it went.
pub(crate) async fn run(engine: &Engine, leased: LeasedExecution, stop: CancellationToken) {
    let callback = leased.flow == CALLBACK_FLOW;
    let (span, trigger, step) = if callback {
        let span = tracing::info_span!(
            "callback",
            execution_id = %leased.id,
            called_execution_id = leased.input["execution_id"].as_str().unwrap_or(""),
            attempt = leased.attempt,
        );
        (span, "callback", super::callback::STEP)
    } else {
        let span = tracing::info_span!(
            "delivery",
            execution_id = %leased.id,
            message_id = leased.input["message_id"].as_str().unwrap_or(""),
            endpoint_id = leased.input["endpoint_id"].as_str().unwrap_or(""),
            attempt = leased.attempt,
        );
        (span, "message", STEP)
    };
    async {
        let _running = engine
            .metrics
            .execution_started(&leased.integration, &leased.flow, trigger);
        let mut run = DeliveryRun {
            engine,
            leased: &leased,
            step,
            logs: Vec::new(),
            steps: Vec::new(),
            events: Vec::new(),
        };
        let attempt = async {
            if callback {
                run.callback().await
            } else {
                run.attempt().await
            }
        };
        let end = tokio::select! {
            end = attempt => Some(end),
            () = stop.cancelled() => None,
        };
        let outcome = match &end {
            Some(End::Finished(finish)) => Some(finish.status.as_str()),
            None => Some("cancelled"),
            Some(End::Retry { .. } | End::Wait { .. }) => None,
        };
        let checkpoint = Checkpoint {
            execution: leased.id.clone(),
            lease: leased.lease.clone(),
            steps: run.steps,
            logs: run.logs,
            end,
            follow_ups: Vec::new(),
            events: run.events,
            state: Vec::new(),
            response: None,
        };
        let published = !checkpoint.events.is_empty();
        match engine.store.checkpoint(checkpoint).await {
            Ok(Checkpointed::Saved) | Ok(Checkpointed::Cancelled) => {
                if published {
                    engine.bus.notify_one();
                }
                if let Some(outcome) = outcome {
                    engine.metrics.execution_finished(
                        &leased.integration,
                        &leased.flow,
                        trigger,
                        outcome,
                        Timestamp::now().duration_since(leased.created_at),
                    );
                }
            }
            Err(error) => {
                tracing::warn!(%error, "Could not record how the attempt went; it will run again.");
            }
        }
    }
    .instrument(span)
    .await;
}

/// One attempt of a delivery or a callback, and what it records.
pub(super) struct DeliveryRun<'a> {
    pub(super) engine: &'a Engine,
    pub(super) leased: &'a LeasedExecution,
    /// The step id of the attempt's records.
    step: &'static str,
    logs: Vec<LogRecord>,
    pub(super) steps: Vec<StepRecord>,
    /// Events about the endpoint and the message for the bus, written with the end.
    events: Vec<NewEvent>,
}

/// What the receiver did with one attempt.
pub(super) struct Exchange {
    pub(super) status: Option<u16>,
    pub(super) headers: Value,
    pub(super) body: Option<String>,
    pub(super) body_truncated: bool,
    /// Why it failed, when it did: a kind and a sentence.
    pub(super) failure: Option<(&'static str, String)>,
}

impl DeliveryRun<'_> {
    pub(super) fn log(&mut self, level: LogLevel, message: String) {
        let seq = self.leased.next_log_seq + u32::try_from(self.logs.len()).unwrap_or(0);
        self.logs.push(LogRecord {
            seq,
            at: Timestamp::now(),
            level,
            step: Some(self.step.to_owned()),
            message,
        });
    }

    pub(super) fn fail(&mut self, code: &str, message: String) -> End {
        self.log(LogLevel::Error, message.clone());
        End::Finished(Finish {
            status: ExecutionStatus::Failed,
            error: Some(ErrorRecord {
                code: code.to_owned(),
                message,
                step: Some(self.step.to_owned()),
            }),
            output: None,
        })
    }

    /// The store could not read `what`: it will be back, so the attempt is tried again
    /// soon without spending one.
    pub(super) fn store_unavailable(&mut self, what: &str, error: &StoreError) -> End {
        self.log(LogLevel::Warn, format!("could not read {what}: {error}"));
        End::Retry {
            at: Timestamp::now().after(std::time::Duration::from_secs(5)),
            error: ErrorRecord {
                code: String::from("store_unavailable"),
                message: error.to_string(),
                step: Some(self.step.to_owned()),
            },
        }
    }

    /// Sends the attempt and says how the execution goes on.
    async fn attempt(&mut self) -> End {
        let store = &self.engine.store;
        let input = &self.leased.input;
        let message_id = input["message_id"].as_str().unwrap_or_default().to_owned();
        let endpoint_id: Option<EndpointId> =
            input["endpoint_id"].as_str().and_then(|id| id.parse().ok());
        let Some(endpoint_id) = endpoint_id else {
            return self.fail(
                "invalid_delivery",
                String::from("the delivery names no endpoint"),
            );
        };
        let loaded = async {
            Ok::<_, switchboard_store::StoreError>((
                store.endpoint(&endpoint_id).await?,
                store.endpoint_secrets(&endpoint_id).await?,
                store.message(&message_id).await?,
            ))
        };
        let (endpoint, secrets, message) = match loaded.await {
            Ok((Some(endpoint), Some(secrets), Some(message))) => {
                (endpoint, secrets, message.message)
            }
            Ok((None, _, _) | (_, None, _)) => {
                return self.fail(
                    "endpoint_not_found",
                    format!("the endpoint {endpoint_id} was deleted"),
                );
            }
            Ok((_, _, None)) => {
                return self.fail(
                    "message_not_found",
                    format!("the message `{message_id}` no longer exists"),
                );
            }
            Err(error) => return self.store_unavailable("the delivery", &error),
        };
        if endpoint.settings.disabled {
            let why = endpoint
                .disabled_reason
                .clone()
                .unwrap_or_else(|| String::from("an operator disabled it"));
            return self.fail(
                "endpoint_disabled",
                format!("the endpoint is disabled: {why}"),
            );
        }
        let attempt = self.leased.failed_attempts.get(STEP).copied().unwrap_or(0) + 1;
        let body = envelope(&message).to_string();
        let now = Timestamp::now();
        let timestamp = now.millis().div_euclid(1000);
        let signature = match signing::signature_header(
            &secrets.signing_keys(now),
            &message.id,
            timestamp,
            body.as_bytes(),
        ) {
            Ok(signature) => signature,
            Err(error) => return self.fail("invalid_secret", error.to_string()),
        };
        let mut headers: Vec<(String, String)> = endpoint
            .settings
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        headers.extend([
            (String::from("webhook-id"), message.id.clone()),
            (String::from("webhook-timestamp"), timestamp.to_string()),
            (String::from("webhook-signature"), signature),
            (
                String::from("content-type"),
                String::from("application/json"),
            ),
        ]);
        let started = Instant::now();
        let exchange = post(self.engine, &endpoint.settings.url, &headers, body).await;
        let took = started.elapsed();
        let succeeded = exchange.failure.is_none();
        self.engine
            .metrics
            .webhook_attempt(succeeded, exchange.status, took);
        let gone = exchange.status == Some(410);
        let verdict = if gone {
            EndpointVerdict::Disable
        } else {
            EndpointVerdict::Track {
                disable_after: self.engine.config.outbound.disable_after,
            }
        };
        let record = Attempt {
            id: 0,
            message_id: message.id.clone(),
            endpoint_id: endpoint.id.clone(),
            execution_id: self.leased.id.clone(),
            attempt,
            url: endpoint.settings.url.clone(),
            at: now,
            status: if succeeded {
                AttemptStatus::Succeeded
            } else {
                AttemptStatus::Failed
            },
            response_status: exchange.status,
            latency_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            response_headers: exchange.headers.clone(),
            response_body: exchange.body.clone(),
            body_truncated: exchange.body_truncated,
            error_kind: exchange
                .failure
                .as_ref()
                .map(|(kind, _)| (*kind).to_owned()),
            error: exchange
                .failure
                .as_ref()
                .map(|(_, message)| message.clone()),
        };
        let recorded = match self.engine.store.record_attempt(record, verdict).await {
            Ok(recorded) => recorded,
            Err(error) => {
                tracing::warn!(%error, "Could not record a delivery attempt.");
                switchboard_store::outbound::AttemptRecorded { disabled: None }
            }
        };
        self.record_step(&endpoint, &message, &headers, attempt, now, &exchange);
        if let Some(reason) = &recorded.disabled {
            self.engine
                .metrics
                .webhook_endpoint_disabled(if gone { "gone" } else { "failing" });
            tracing::warn!(endpoint = %endpoint.id, %reason, "Endpoint disabled.");
            self.announce(
                ENDPOINT_DISABLED,
                format!("{}.disabled.{}", endpoint.id, self.leased.id),
                json!({
                    "endpoint_id": endpoint.id,
                    "url": endpoint.settings.url,
                    "reason": reason,
                    "failing_since": endpoint.failing_since,
                    "disabled_at": now,
                }),
            );
        }
        let Some((kind, failure)) = exchange.failure.clone() else {
            self.log(
                LogLevel::Info,
                format!("delivered to {} (attempt {attempt})", endpoint.settings.url),
            );
            return End::Finished(Finish {
                status: ExecutionStatus::Succeeded,
                error: None,
                output: None,
            });
        };
        if gone {
            return self.fail(
                "endpoint_gone",
                format!("{failure}; the endpoint is disabled and gets no more deliveries"),
            );
        }
        if let Some(reason) = recorded.disabled {
            return self.fail(
                "endpoint_disabled",
                format!("{failure}; the endpoint is disabled: {reason}"),
            );
        }
        let schedule = match &endpoint.settings.retry_schedule {
            Some(entries) => schedule::parse(entries).unwrap_or_default(),
            None => self.engine.config.outbound.retry_schedule.clone(),
        };
        match exchange.retry(&schedule, attempt, kind, &failure, STEP) {
            Ok((retry, line)) => {
                self.log(LogLevel::Warn, line);
                retry
            }
            Err(last) => {
                self.announce(
                    ATTEMPT_EXHAUSTED,
                    format!("{}.exhausted", self.leased.id),
                    json!({
                        "message_id": message.id,
                        "event_type": message.event_type,
                        "endpoint_id": endpoint.id,
                        "url": endpoint.settings.url,
                        "attempts": attempt,
                        "last_attempt": {
                            "at": now,
                            "response_status": exchange.status,
                            "error_kind": kind,
                            "error": failure,
                        },
                    }),
                );
                self.fail("attempts_exhausted", last)
            }
        }
    }

    /// Adds an event about the delivery to the bus, published with its end.
    fn announce(&mut self, topic: &str, id: String, data: Value) {
        self.events.push(NewEvent {
            id,
            topic: topic.to_owned(),
            key: None,
            source: String::from("/webhooks"),
            time: Timestamp::now(),
            data,
        });
    }

    /// The attempt as a step of the delivery's execution.
    fn record_step(
        &mut self,
        endpoint: &Endpoint,
        message: &Message,
        headers: &[(String, String)],
        attempt: u32,
        started_at: Timestamp,
        exchange: &Exchange,
    ) {
        let sent: Map<String, Value> = headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        let seq = self.leased.next_step_seq + u32::try_from(self.steps.len()).unwrap_or(0);
        let input = self.engine.secrets.redact_json(&json!({
            "method": "POST",
            "url": endpoint.settings.url,
            "headers": sent,
            "message_id": message.id,
            "event_type": message.event_type,
        }));
        self.steps
            .push(exchange.record(seq, STEP, input, attempt, started_at));
    }
}

impl Exchange {
    /// After failed attempt `attempt` (whose `kind` and `failure` these are): the retry
    /// `schedule` asks for (never sooner than the receiver's `Retry-After`) with the
    /// log line that says so, or, after the last attempt, the message the failure ends
    /// with.
    pub(super) fn retry(
        &self,
        schedule: &[std::time::Duration],
        attempt: u32,
        kind: &str,
        failure: &str,
        step: &str,
    ) -> Result<(End, String), String> {
        let answer = json!({"status": self.status, "headers": self.headers});
        let asked = retry_after(Some(&answer), schedule::MAX_RETRY_AFTER);
        let attempts = schedule.len() + 1;
        let Some(wait) = schedule::next_wait(schedule, attempt, random_unit(), asked) else {
            return Err(format!(
                "{failure} (attempt {attempt} of {attempts}, the last)"
            ));
        };
        let line = format!(
            "attempt {attempt} of {attempts} failed: {failure}; next attempt in {}",
            switchboard_core::HumanDuration(wait)
        );
        let retry = End::Retry {
            at: Timestamp::now().after(wait),
            error: ErrorRecord {
                code: kind.to_owned(),
                message: failure.to_owned(),
                step: Some(step.to_owned()),
            },
        };
        Ok((retry, line))
    }

    /// The attempt as step `step` of its execution (numbered `seq`): succeeded on a 2xx,
    /// with the answer as its output.
    pub(super) fn record(
        &self,
        seq: u32,
        step: &str,
        input: Value,
        attempt: u32,
        started_at: Timestamp,
    ) -> StepRecord {
        let finished_at = Timestamp::now();
        StepRecord {
            seq,
            step_id: step.to_owned(),
            kind: step.to_owned(),
            status: if self.failure.is_none() {
                StepStatus::Succeeded
            } else {
                StepStatus::Failed
            },
            attempt,
            input,
            output: self.status.map(
                |status| json!({"status": status, "headers": self.headers, "body": self.body}),
            ),
            error: self.failure.as_ref().map(|(kind, message)| ErrorRecord {
                code: (*kind).to_owned(),
                message: message.clone(),
                step: Some(step.to_owned()),
            }),
            started_at,
            finished_at,
            duration_ms: finished_at.millis() - started_at.millis(),
        }
    }
}

/// Posts `body` to `url` through the address guard and reads what it answered.
pub(super) async fn post(
    engine: &Engine,
    url: &str,
    headers: &[(String, String)],
    body: String,
) -> Exchange {
    let failed = |kind, message| Exchange {
        status: None,
        headers: Value::Object(Map::new()),
        body: None,
        body_truncated: false,
        failure: Some((kind, message)),
    };
    let url = match reqwest::Url::parse(url) {
        Ok(url) => url,
        Err(error) => return failed("invalid_url", error.to_string()),
    };
    if let Err(error) = engine.webhooks_guard.check_url(&url) {
        return failed("forbidden_address", error.to_string());
    }
    let mut request = engine.webhooks_http.post(url);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut response = match request.body(body).send().await {
        Ok(response) => response,
        Err(error) => return failed(classify(&error), error_chain(&error)),
    };
    let status = response.status().as_u16();
    let headers = switchboard_core::headers::headers_object(response.headers());
    let mut kept = Vec::new();
    let mut body_truncated = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = KEPT_BODY - kept.len();
                if chunk.len() > room {
                    kept.extend_from_slice(&chunk[..room]);
                    body_truncated = true;
                    break;
                }
                kept.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) => {
                let mut exchange = failed(classify(&error), error_chain(&error));
                exchange.status = Some(status);
                exchange.headers = headers;
                return exchange;
            }
        }
    }
    let failure = match status {
        200..=299 => None,
        300..=399 => Some((
            "redirect",
            format!("the endpoint answered {status}; redirects are not followed"),
        )),
        410 => Some(("gone", String::from("the endpoint answered 410 Gone"))),
        _ => Some(("http_status", format!("the endpoint answered {status}"))),
    };
    Exchange {
        status: Some(status),
        headers,
        body: (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()),
        body_truncated,
        failure,
    }
}

/// The kind of a failure to get an answer.
fn classify(error: &reqwest::Error) -> &'static str {
    let forbidden =
        std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |error| {
            error.source()
        })
        .any(|cause| cause.is::<super::ForbiddenAddress>());
    if forbidden {
        "forbidden_address"
    } else if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    }
}
