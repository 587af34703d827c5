//! Callbacks: a synchronous caller that stopped waiting (it got `202`) and left a
//! callback URL gets the execution's answer posted there once the execution ends.
//!
//! The store queues an execution of `_webhooks/callback` in the commit that ends the
//! called execution; it runs like a delivery ([`super::deliver`]). Each attempt posts
//! `{execution_id, integration, flow, status, response}` signed the Standard Webhooks way
//! with the flow's `callback.secret` (`webhook-id` is the called execution's id, so a
//! repeat can be told), through the address guard of outbound webhooks, retried on
//! their default schedule.

use serde_json::json;
use switchboard_core::{ExecutionId, Timestamp};
use switchboard_store::{End, ExecutionStatus, Finish, LogLevel};

use super::deliver::{DeliveryRun, post};
use super::signing;
use crate::invoke::answer_of;

/// The step id of every attempt in the callback's execution record.
pub(super) const STEP: &str = "callback";

impl DeliveryRun<'_> {
    /// Sends one attempt of a callback; says how its execution goes on.
    pub(super) async fn callback(&mut self) -> End {
        let engine = self.engine;
        let leased = self.leased;
        let url = leased.input["url"].as_str().unwrap_or_default().to_owned();
        let called: Option<ExecutionId> = leased.input["execution_id"]
            .as_str()
            .and_then(|id| id.parse().ok());
        let Some(called) = called else {
            return self.fail(
                "invalid_callback",
                String::from("the callback names no execution"),
            );
        };
        let detail = match engine.store.execution(&called).await {
            Ok(Some(detail)) => detail,
            Ok(None) => {
                return self.fail(
                    "execution_not_found",
                    format!("the execution {called} no longer exists"),
                );
            }
            Err(error) => return self.store_unavailable("the execution", &error),
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
            return self.fail(
                "no_callback_secret",
                format!(
                    "the flow `{}/{}` no longer has a `callback.secret` to sign with",
                    summary.integration, summary.flow
                ),
            );
        };
        let secret = match engine.verify_secrets(&summary.integration, &[secret]) {
            Ok(mut secrets) => secrets.pop().unwrap_or_default(),
            Err(error) => {
                return self.fail("invalid_secret", format!("the callback secret: {error}"));
            }
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
            Err(error) => {
                return self.fail("invalid_secret", format!("the callback secret: {error}"));
            }
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
        self.steps
            .push(exchange.record(leased.next_step_seq, STEP, input, attempt, now));
        let Some((kind, failure)) = exchange.failure.clone() else {
            self.log(
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
                self.log(LogLevel::Warn, line);
                retry
            }
            Err(last) => self.fail("attempts_exhausted", last),
        }
    }
}
