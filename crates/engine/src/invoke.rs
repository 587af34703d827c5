//! Synchronous callers (`invoke` triggers, webhooks with `mode: sync`): the answer an
//! execution gives, and waiting for it without holding a worker.
//!
//! A caller's task waits on a [`Notify`] that the execution's worker fires after the
//! checkpoint that stores a `respond` answer or the execution's end, and reads the
//! answer back from the store; it also looks every [`ANSWER_POLL`], for an execution
//! that runs in another process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};
use switchboard_core::ExecutionId;
use switchboard_store::{ExecutionStatus, Outcome, StoreError};
use tokio::sync::Notify;

use crate::Engine;

/// How often a waiting caller looks at the store when nothing woke it.
const ANSWER_POLL: Duration = Duration::from_secs(1);

/// What a synchronous caller gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body: a string is sent as text, `null` as no body, anything else as JSON.
    pub body: Value,
}

impl Answer {
    /// `{status, headers, body}`, as a callback carries it.
    pub fn to_json(&self) -> Value {
        let headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        json!({"status": self.status, "headers": headers, "body": self.body})
    }
}

/// The answer of an execution as it stands: its `respond` answer, else, once it has
/// ended, `200` with its output, or `500` naming its failure (the details stay in the
/// execution's record). `None` while there is none yet.
pub fn answer_of(id: &ExecutionId, outcome: &Outcome) -> Option<Answer> {
    if let Some(response) = &outcome.response {
        let headers = response["headers"]
            .as_object()
            .map(|headers| {
                headers
                    .iter()
                    .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let status = response["status"]
            .as_u64()
            .and_then(|status| u16::try_from(status).ok())
            .unwrap_or(200);
        return Some(Answer {
            status,
            headers,
            body: response["body"].clone(),
        });
    }
    let failed = |code: &str, message: String| Answer {
        status: 500,
        headers: Vec::new(),
        body: json!({"error": {"code": code, "message": message}, "execution_id": id}),
    };
    match outcome.status {
        ExecutionStatus::Succeeded => Some(Answer {
            status: 200,
            headers: Vec::new(),
            body: outcome.output.clone().unwrap_or(Value::Null),
        }),
        ExecutionStatus::Failed => {
            let code = outcome
                .error
                .as_ref()
                .map_or("failed", |error| error.code.as_str());
            Some(failed(
                "execution_failed",
                format!("the flow failed ({code}); execution {id} has the details"),
            ))
        }
        ExecutionStatus::Cancelled => Some(failed(
            "execution_cancelled",
            format!("execution {id} was cancelled"),
        )),
        _ => None,
    }
}

/// The callers waiting, by execution.
#[derive(Default)]
pub(crate) struct Waiters(Mutex<HashMap<ExecutionId, Arc<Notify>>>);

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ExecutionId, Arc<Notify>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One caller's registration; forgets the execution when its last caller leaves.
struct Waiting<'a> {
    waiters: &'a Waiters,
    id: &'a ExecutionId,
    notify: Arc<Notify>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiters = self.waiters.lock();
        // The map's reference and this one: no other caller waits.
        if Arc::strong_count(&self.notify) <= 2 {
            waiters.remove(self.id);
        }
    }
}

impl Engine {
    /// The answer of execution `id` as it stands; `None` when there is no such
    /// execution, `Some(None)` while it has no answer yet.
    pub async fn answer(&self, id: &ExecutionId) -> Result<Option<Option<Answer>>, StoreError> {
        Ok(self
            .store
            .outcome(id)
            .await?
            .map(|outcome| answer_of(id, &outcome)))
    }

    /// Waits up to `wait` for execution `id` to answer; `None` when it has not by then.
    pub async fn await_answer(
        &self,
        id: &ExecutionId,
        wait: Duration,
    ) -> Result<Option<Answer>, StoreError> {
        let notify = Arc::clone(self.waiters.lock().entry(id.clone()).or_default());
        let waiting = Waiting {
            waiters: &self.waiters,
            id,
            notify,
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = waiting.notify.notified();
            tokio::pin!(notified);
            // Registered before the read, so an answer stored after it still wakes us.
            notified.as_mut().enable();
            if let Some(Some(answer)) = self.answer(id).await? {
                return Ok(Some(answer));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep((deadline - now).min(ANSWER_POLL)) => {}
            }
        }
    }

    /// Wakes the callers waiting for execution `id`: it stored an answer or ended.
    pub(crate) fn answered(&self, id: &ExecutionId) {
        if let Some(notify) = self.waiters.lock().get(id) {
            notify.notify_waiters();
        }
    }

    /// Asks for the answer of execution `id` to be posted to `url` when it ends;
    /// `false` when it has ended already (its answer can be given at once).
    pub async fn hand_off(&self, id: &ExecutionId, url: &str) -> Result<bool, StoreError> {
        self.store.hand_off(id, url).await
    }
}

impl Engine {
    /// Refuses a callback URL that is not `http(s)` or names an address outbound
    /// webhooks may not reach; the message says why.
    pub fn check_callback_url(&self, url: &str) -> Result<(), String> {
        let parsed =
            reqwest::Url::parse(url).map_err(|error| format!("`{url}` is not a URL: {error}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("`{url}` is not an http or https URL"));
        }
        self.webhooks_guard
            .check_url(&parsed)
            .map_err(|error| error.to_string())
    }
}
