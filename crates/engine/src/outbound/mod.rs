//! Outbound webhooks, like a self-hosted Svix: subscriber endpoints, messages fanned out
//! to every endpoint whose event types (and filter) match, and signed deliveries retried
//! on a schedule.
//!
//! A message and all its deliveries are stored in one transaction before the caller
//! hears back. Each delivery is an execution of the built-in flow
//! `_webhooks/deliver` ([`deliver`]), so leases, crash recovery, `fifo` ordering
//! (an ordering key per endpoint) and `rate_limit` (a throttle group per endpoint) are
//! the engine's own. Every attempt is recorded with the endpoint's answer.
//!
//! - [`signing`]: Standard Webhooks signatures, with rotation.
//! - [`schedule`]: the retry schedule, its jitter and `Retry-After`.
//! - [`guard`]: the address guard that keeps deliveries out of internal networks.

mod callback;
mod deliver;
mod guard;
pub mod schedule;
pub mod signing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::ids::EndpointId;
use switchboard_core::topic;
use switchboard_core::{ExecutionId, Timestamp};
use switchboard_expr::{Expr, Scope};
use switchboard_store::bus::Event;
use switchboard_store::outbound::{
    DELIVERY_FLOW, DELIVERY_INTEGRATION, Delivery, DeliveryOrdering, Endpoint, EndpointSecrets,
    EndpointSettings, Message, MessageCreated, NewDelivery,
};
use switchboard_store::{NewExecution, StoreError, ThrottleGroup};

use crate::Engine;
pub(crate) use deliver::run as deliver;
pub use guard::{AddressGuard, ForbiddenAddress};

/// The `user-agent` of every delivery.
pub const USER_AGENT: &str = concat!(
    "Switchboard-Webhooks/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/switchboard)"
);

/// How outbound deliveries behave.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// How many deliveries (and callbacks) run at once, apart from the flows' workers.
    pub workers: usize,
    /// The waits between attempts, for endpoints without their own schedule.
    pub retry_schedule: Vec<Duration>,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: Duration,
    /// Networks deliveries may reach although they are internal (loopback, private…).
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one attempt may take in all.
    pub timeout: Duration,
    /// How long a rotated-out secret keeps signing, unless the rotation says otherwise.
    pub rotation_grace: Duration,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            retry_schedule: schedule::DEFAULT_SCHEDULE.to_vec(),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            allowed_networks: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            rotation_grace: Duration::from_secs(24 * 3600),
        }
    }
}

impl OutboundConfig {
    /// The HTTP client of deliveries: no redirects, no proxies, `guard` as its resolver.
    pub(crate) fn client(&self, guard: AddressGuard) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .dns_resolver(guard)
            .build()
    }

    /// The address guard of these settings.
    pub fn guard(&self) -> AddressGuard {
        AddressGuard::new(self.allowed_networks.clone())
    }
}

/// An outbound request that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// A field of the input is wrong.
    #[error("{message}")]
    Invalid {
        /// Where: `url`, `event_types[2]`, `retry_schedule[0]`…
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No endpoint has that id.
    #[error("there is no endpoint `{0}`")]
    EndpointNotFound(EndpointId),
    /// No message has that id.
    #[error("there is no message `{0}`")]
    MessageNotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No secret could be generated.
    #[error("cannot generate a signing secret: {0}")]
    Random(String),
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> OutboundError {
    OutboundError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// A message to post.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Its event type.
    pub event_type: String,
    /// Its data.
    pub payload: Value,
    /// Its id; a repeated one is accepted once. Generated when absent.
    pub id: Option<String>,
    /// The tenant whose endpoints receive it.
    pub tenant: Option<String>,
}

/// The highest `rate_limit` an endpoint may have, per second.
const MAX_RATE_LIMIT: u32 = 10_000;

/// Whether a tenant name is usable.
fn is_tenant(tenant: &str) -> bool {
    (1..=256).contains(&tenant.len())
}

/// Headers an endpoint may not set: the ones every delivery sets itself.
const RESERVED_HEADERS: [&str; 7] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "user-agent",
    "host",
];

/// The body every delivery of a message carries: the Standard Webhooks payload shape.
pub(crate) fn envelope(message: &Message) -> Value {
    json!({
        "type": message.event_type,
        "timestamp": message.created_at,
        "data": message.payload,
    })
}

/// Compiled endpoint filters, by source.
#[derive(Default)]
pub(crate) struct Filters {
    compiled: Mutex<HashMap<String, Arc<Expr>>>,
}

impl Filters {
    /// The most filters kept compiled; past it the cache starts over.
    const MOST: usize = 1024;

    fn get(&self, source: &str) -> Option<Arc<Expr>> {
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(expr) = compiled.get(source) {
            return Some(Arc::clone(expr));
        }
        let expr = Arc::new(Expr::compile(source).ok()?);
        if compiled.len() >= Self::MOST {
            compiled.clear();
        }
        compiled.insert(source.to_owned(), Arc::clone(&expr));
        Some(expr)
    }
}

impl Engine {
    /// Checks an endpoint's settings, naming the field at fault.
    pub fn validate_endpoint(&self, settings: &EndpointSettings) -> Result<(), OutboundError> {
        let url = reqwest::Url::parse(&settings.url)
            .map_err(|error| invalid("url", format!("`{}` is not a URL: {error}", settings.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid("url", "the URL must be http or https, with a host"));
        }
        if settings.url.len() > 2048 {
            return Err(invalid("url", "the URL is longer than 2048 characters"));
        }
        for (index, pattern) in settings.event_types.iter().enumerate() {
            if !topic::is_valid(pattern, true) {
                return Err(invalid(
                    format!("event_types[{index}]"),
                    format!(
                        "`{pattern}` is not an event type: use letters, digits, `.`, `_`, `-`, `:` and `*`"
                    ),
                ));
            }
        }
        if let Some(filter) = &settings.filter
            && let Err(errors) = Expr::compile(filter)
        {
            let message = errors
                .iter()
                .map(|error| format!("{} (at byte {})", error.message, error.offset))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(invalid(
                "filter",
                format!("the filter is not valid jq: {message}"),
            ));
        }
        for (name, value) in &settings.headers {
            let path = format!("headers.{name}");
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(path, format!("`{name}` is not a header name")));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(invalid(
                    path,
                    format!("`{name}` is set by every delivery and cannot be replaced"),
                ));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(invalid(path, "the value is not a valid header value"));
            }
        }
        if settings
            .rate_limit
            .is_some_and(|rate| !(1..=MAX_RATE_LIMIT).contains(&rate))
        {
            return Err(invalid(
                "rate_limit",
                format!("the rate limit is 1 to {MAX_RATE_LIMIT} deliveries per second"),
            ));
        }
        if let Some(entries) = &settings.retry_schedule {
            schedule::parse(entries).map_err(|error| {
                let path = match error.index() {
                    Some(index) => format!("retry_schedule[{index}]"),
                    None => String::from("retry_schedule"),
                };
                invalid(path, error.to_string())
            })?;
        }
        if let Some(tenant) = &settings.tenant
            && !is_tenant(tenant)
        {
            return Err(invalid("tenant", "a tenant is 1 to 256 characters"));
        }
        Ok(())
    }

    /// Creates an endpoint with a new signing secret.
    pub async fn create_endpoint(
        &self,
        settings: EndpointSettings,
    ) -> Result<Endpoint, OutboundError> {
        self.validate_endpoint(&settings)?;
        let secret =
            signing::generate_secret().map_err(|error| OutboundError::Random(error.to_string()))?;
        let now = Timestamp::now();
        let endpoint = Endpoint {
            id: EndpointId::generate(),
            settings,
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        self.store.create_endpoint(endpoint.clone(), secret).await?;
        Ok(endpoint)
    }

    /// Replaces an endpoint's settings.
    pub async fn update_endpoint(
        &self,
        id: &EndpointId,
        settings: EndpointSettings,
    ) -> Result<Endpoint, OutboundError> {
        self.validate_endpoint(&settings)?;
        self.store
            .update_endpoint(id, settings, Timestamp::now())
            .await?
            .ok_or_else(|| OutboundError::EndpointNotFound(id.clone()))
    }

    /// Gives an endpoint a new secret (`key`, or a generated one); the old one keeps
    /// signing for `grace` (default: the configured grace).
    pub async fn rotate_secret(
        &self,
        id: &EndpointId,
        key: Option<String>,
        grace: Option<Duration>,
    ) -> Result<EndpointSecrets, OutboundError> {
        let key = match key {
            Some(key) => {
                signing::secret_key(&key).map_err(|error| invalid("key", error.to_string()))?;
                key
            }
            None => signing::generate_secret()
                .map_err(|error| OutboundError::Random(error.to_string()))?,
        };
        let grace = grace.unwrap_or(self.config.outbound.rotation_grace);
        self.store
            .rotate_secret(id, key, Timestamp::now().after(grace))
            .await?
            .ok_or_else(|| OutboundError::EndpointNotFound(id.clone()))
    }

    /// Stores a message and queues one delivery per matching endpoint, durably, before
    /// it returns; a repeated id answers the first message.
    pub async fn post_message(&self, new: NewMessage) -> Result<MessageCreated, OutboundError> {
        if !topic::is_valid(&new.event_type, false) {
            return Err(invalid(
                "event_type",
                "an event type is 1 to 256 letters, digits, `.`, `_`, `-` or `:`",
            ));
        }
        if new
            .tenant
            .as_deref()
            .is_some_and(|tenant| !is_tenant(tenant))
        {
            return Err(invalid("tenant", "a tenant is 1 to 256 characters"));
        }
        let id = match new.id {
            Some(id) if topic::is_valid(&id, false) => id,
            Some(_) => {
                return Err(invalid(
                    "id",
                    "a message id is 1 to 256 letters, digits, `.`, `_`, `-` or `:`",
                ));
            }
            None => format!(
                "msg_{}",
                ExecutionId::generate()
                    .as_str()
                    .trim_start_matches(ExecutionId::PREFIX)
            ),
        };
        if let Some(mut first) = self.store.message(&id).await? {
            first.duplicate = true;
            self.metrics.webhook_message(true, 0);
            return Ok(first);
        }
        let message = Message {
            id,
            event_type: new.event_type,
            payload: new.payload,
            tenant: new.tenant,
            created_at: Timestamp::now(),
        };
        let endpoints = self.store.subscribers(message.tenant.clone()).await?;
        let deliveries = self.deliveries(&endpoints, &message, None);
        Ok(self.create_message(message, deliveries).await?)
    }

    /// Fans events of the bus out to the endpoints whose event types match their
    /// topics, each as a message with the event's id. Nothing is stored for an event no
    /// endpoint takes; an event already fanned out is not fanned out again.
    pub(crate) async fn fan_out_events(&self, events: &[&Event]) -> Result<(), StoreError> {
        let endpoints = self.store.subscribers(None).await?;
        if endpoints.is_empty() {
            return Ok(());
        }
        for event in events {
            let message = Message {
                id: event.id.clone(),
                event_type: event.topic.clone(),
                payload: event.data.clone(),
                tenant: None,
                created_at: event.time,
            };
            // An event about an endpoint is not sent to that endpoint.
            let about = [crate::bus::ENDPOINT_DISABLED, crate::bus::ATTEMPT_EXHAUSTED]
                .contains(&event.topic.as_str())
                .then(|| event.data["endpoint_id"].as_str())
                .flatten();
            let deliveries = self.deliveries(&endpoints, &message, about);
            if !deliveries.is_empty() && self.store.message(&event.id).await?.is_none() {
                self.create_message(message, deliveries).await?;
            }
        }
        Ok(())
    }

    /// One delivery of `message` per endpoint of `endpoints` that takes it, but `skip`.
    fn deliveries(
        &self,
        endpoints: &[Endpoint],
        message: &Message,
        skip: Option<&str>,
    ) -> Vec<NewDelivery> {
        endpoints
            .iter()
            .filter(|endpoint| Some(endpoint.id.as_str()) != skip)
            .filter(|endpoint| self.subscribes(endpoint, message))
            .map(|endpoint| delivery(endpoint, message, None))
            .collect()
    }

    async fn create_message(
        &self,
        message: Message,
        deliveries: Vec<NewDelivery>,
    ) -> Result<MessageCreated, StoreError> {
        let created = self.store.create_message(message, deliveries).await?;
        self.metrics
            .webhook_message(created.duplicate, created.deliveries.len());
        if !created.deliveries.is_empty() {
            self.wake.notify_one();
        }
        Ok(created)
    }

    /// Whether `endpoint` takes `message`: its event types match and its filter holds.
    fn subscribes(&self, endpoint: &Endpoint, message: &Message) -> bool {
        let settings = &endpoint.settings;
        let typed = settings.event_types.is_empty()
            || settings
                .event_types
                .iter()
                .any(|pattern| topic::matches(pattern, &message.event_type));
        if !typed {
            return false;
        }
        let Some(source) = &settings.filter else {
            return true;
        };
        let Some(filter) = self.filters.get(source) else {
            return false;
        };
        let mut event = envelope(message);
        event["id"] = Value::String(message.id.clone());
        let scope = Scope::new(
            &event,
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &Value::Null,
        );
        match filter.eval_one(&scope, &self.config.expression_limits) {
            Ok(value) => !matches!(value, Value::Null | Value::Bool(false)),
            Err(error) => {
                tracing::warn!(endpoint = %endpoint.id, message = %message.id, %error, "An endpoint's filter failed; the message is not sent to it.");
                false
            }
        }
    }

    /// Queues one more delivery of a message to an endpoint, whatever became of the
    /// earlier ones.
    pub async fn resend(
        &self,
        message_id: &str,
        endpoint_id: &EndpointId,
        replay_of: Option<ExecutionId>,
    ) -> Result<Delivery, OutboundError> {
        let message = self
            .store
            .message(message_id)
            .await?
            .ok_or_else(|| OutboundError::MessageNotFound(message_id.to_owned()))?
            .message;
        let endpoint = self
            .store
            .endpoint(endpoint_id)
            .await?
            .ok_or_else(|| OutboundError::EndpointNotFound(endpoint_id.clone()))?;
        let delivery = self
            .store
            .add_delivery(&message.id, delivery(&endpoint, &message, replay_of))
            .await?;
        self.wake.notify_one();
        Ok(delivery)
    }
}

/// The delivery of `message` to `endpoint`: an execution of the delivery flow, in the
/// endpoint's ordering sequence and throttle group when it has them.
fn delivery(endpoint: &Endpoint, message: &Message, replay_of: Option<ExecutionId>) -> NewDelivery {
    let trigger = json!({
        "kind": "message",
        "message_id": message.id,
        "event_type": message.event_type,
        "endpoint_id": endpoint.id,
    });
    let input = json!({"message_id": message.id, "endpoint_id": endpoint.id});
    let mut execution = NewExecution::new(DELIVERY_INTEGRATION, DELIVERY_FLOW, trigger, input);
    execution.replay_of = replay_of;
    if endpoint.settings.ordering == DeliveryOrdering::Fifo {
        execution.ordering_key = Some(endpoint.id.to_string());
    }
    execution.throttle = endpoint.settings.rate_limit.map(|count| ThrottleGroup {
        key: endpoint.id.to_string(),
        count,
        per: Duration::from_secs(1),
    });
    NewDelivery {
        endpoint: endpoint.id.clone(),
        execution,
    }
}
