//! Queuing executions: the keys a flow computes from each trigger (de-duplication,
//! concurrency group, ordering sequence), then one durable insert.

use serde_json::Value;
use switchboard_expr::{EvalError, Expr, Scope, Template};
use switchboard_project::load::DEFAULT_DEDUPE_WINDOW;
use switchboard_project::{Flow, VerifyScheme, WebhookTrigger};
use switchboard_store::{
    ConcurrencyGroup, DedupeKey, Enqueued, NewExecution, StoreError, ThrottleGroup,
};

use crate::Engine;

/// An execution could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// One of the flow's key programs (or its `challenge`) failed on this trigger.
    #[error("the {what} key could not be computed: {source}")]
    Key {
        /// `dedupe`, `concurrency`, `ordering`, `debounce`, `throttle` or `challenge`.
        what: &'static str,
        /// Why.
        source: EvalError,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Queues an execution of `flow`; when this returns it is durable. For a webhook
    /// flow with `dedupe`, a key seen within the window queues nothing and the answer
    /// names the execution that holds it.
    pub async fn submit(
        &self,
        flow: &Flow,
        trigger: Value,
        input: Value,
    ) -> Result<Enqueued, SubmitError> {
        let new = self.prepare(flow, trigger, input)?;
        let enqueued = self.store.enqueue(new).await?;
        if !enqueued.duplicate {
            self.wake.notify_one();
        }
        Ok(enqueued)
    }

    /// A new execution of `flow` with its keys computed from `trigger` and `input`.
    pub(crate) fn prepare(
        &self,
        flow: &Flow,
        trigger: Value,
        input: Value,
    ) -> Result<NewExecution, SubmitError> {
        let mut new = NewExecution::new(&flow.integration, &flow.name, trigger, input);
        if let Some(webhook) = flow.trigger.request() {
            new.dedupe = self.webhook_dedupe(flow, webhook, &new)?;
        }
        if let Some(concurrency) = &flow.concurrency {
            let key = match &concurrency.key {
                Some(program) => self.key(flow, program, &new, "concurrency")?,
                None => None,
            };
            new.concurrency = Some(ConcurrencyGroup {
                key: key.unwrap_or_default(),
                limit: concurrency.limit,
            });
        }
        if let Some(ordering) = &flow.ordering {
            new.ordering_key = self.key(flow, ordering, &new, "ordering")?;
        }
        if let Some(debounce) = &flow.debounce {
            let key = match &debounce.key {
                Some(program) => self.key(flow, program, &new, "debounce")?,
                None => None,
            };
            new.debounce_key = Some(key.unwrap_or_default());
            new.not_before = Some(new.created_at.after(debounce.period));
        }
        if let Some(throttle) = &flow.throttle {
            let key = match &throttle.key {
                Some(program) => self.key(flow, program, &new, "throttle")?,
                None => None,
            };
            new.throttle = Some(ThrottleGroup {
                key: key.unwrap_or_default(),
                count: throttle.count,
                per: throttle.per,
            });
        }
        Ok(new)
    }

    /// A webhook's de-duplication key: its `dedupe` program's, or for a scheme whose
    /// deliveries carry an id (`standard-webhooks`, `svix`), that id.
    fn webhook_dedupe(
        &self,
        flow: &Flow,
        webhook: &WebhookTrigger,
        new: &NewExecution,
    ) -> Result<Option<DedupeKey>, SubmitError> {
        let key = match (
            &webhook.dedupe,
            webhook.verify.as_ref().map(|verify| &verify.scheme),
        ) {
            (Some(dedupe), _) => self.key(flow, &dedupe.key, new, "dedupe")?,
            (None, Some(VerifyScheme::StandardWebhooks)) => header(&new.trigger, "webhook-id"),
            (None, Some(VerifyScheme::Svix)) => header(&new.trigger, "svix-id"),
            (None, _) => None,
        };
        let window = webhook
            .dedupe
            .as_ref()
            .map_or(DEFAULT_DEDUPE_WINDOW, |dedupe| dedupe.window);
        Ok(key.map(|key| DedupeKey {
            key,
            expires_at: new.created_at.after(window),
        }))
    }

    /// [`Engine::prepare`], or, when a key program fails on a trigger that is not a
    /// request (an alert's notice, a failed execution), the execution without keys.
    pub(crate) fn prepare_or_plain(
        &self,
        flow: &Flow,
        trigger: Value,
        input: Value,
    ) -> NewExecution {
        match self.prepare(flow, trigger.clone(), input.clone()) {
            Ok(new) => new,
            Err(error) => {
                tracing::warn!(%error, flow = %flow.name, "Queuing without the flow's keys.");
                NewExecution::new(&flow.integration, &flow.name, trigger, input)
            }
        }
    }

    /// A webhook's verification secrets, rendered with `$secrets` and `$config` of
    /// `integration` (the request is not in scope: a secret cannot depend on it).
    pub fn verify_secrets(
        &self,
        integration: &str,
        templates: &[Template],
    ) -> Result<Vec<String>, EvalError> {
        let scope = self.scope(integration, &Value::Null, &Value::Null, &Value::Null);
        templates
            .iter()
            .map(|template| template.render(&scope, &self.config.expression_limits))
            .collect()
    }

    /// The answer a webhook flow's `challenge` gives this request (a provider's
    /// handshake), or `None` when the request is not one.
    pub fn challenge(
        &self,
        flow: &Flow,
        trigger: &Value,
        input: &Value,
    ) -> Result<Option<Value>, SubmitError> {
        let Some(webhook) = flow.trigger.request() else {
            return Ok(None);
        };
        let Some(program) = &webhook.challenge else {
            return Ok(None);
        };
        let scope = self.scope(&flow.integration, input, trigger, &Value::Null);
        let answer = program
            .eval_one(&scope, &self.config.expression_limits)
            .map_err(|source| SubmitError::Key {
                what: "challenge",
                source,
            })?;
        Ok((!answer.is_null()).then_some(answer))
    }

    /// The scope of an expression outside the steps: `.`, `$trigger` and `$execution`
    /// as given, with the `$config` of `integration` and the `$secrets`.
    pub(crate) fn scope(
        &self,
        integration: &str,
        input: &Value,
        trigger: &Value,
        execution: &Value,
    ) -> Scope {
        let config = self
            .project()
            .runnable_integration(integration)
            .map_or(Value::Null, |integration| integration.config_values());
        Scope::new(input, trigger, &config, &self.secrets.to_json(), execution)
    }

    /// A key: the program's result as text (a string as it is); `None` for `null`.
    fn key(
        &self,
        flow: &Flow,
        program: &Expr,
        new: &NewExecution,
        what: &'static str,
    ) -> Result<Option<String>, SubmitError> {
        let execution = serde_json::json!({
            "id": new.id,
            "integration": flow.integration,
            "flow": flow.name,
        });
        let scope = self.scope(&flow.integration, &new.input, &new.trigger, &execution);
        let key = program
            .eval_one(&scope, &self.config.expression_limits)
            .map_err(|source| SubmitError::Key { what, source })?;
        Ok(match key {
            Value::Null => None,
            Value::String(text) => Some(text),
            other => Some(other.to_string()),
        })
    }
}

/// A request header of a webhook trigger, as text.
fn header(trigger: &Value, name: &str) -> Option<String> {
    trigger["headers"][name].as_str().map(str::to_owned)
}
