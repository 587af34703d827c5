//! What the store keeps for outbound webhooks: subscriber endpoints, the messages fanned
//! out to them, and every delivery attempt.
//!
//! A delivery is an execution of the built-in flow [`DELIVERY_FLOW`] of
//! [`DELIVERY_INTEGRATION`], so it is queued, leased, retried, ordered (`fifo`
//! endpoints), throttled (`rate_limit`) and recovered after a crash by the same machinery
//! as every flow. The `deliveries` table links each such execution to its message and
//! endpoint; `delivery_attempts` records each HTTP exchange.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::ids::EndpointId;
use switchboard_core::{ExecutionId, Timestamp};
use utoipa::ToSchema;

use crate::StoreError;
use crate::records::{ExecutionStatus, NewExecution, Page};

/// The integration name of delivery executions (not a valid name for a project's own).
pub const DELIVERY_INTEGRATION: &str = "_webhooks";

/// The flow name of delivery executions.
pub const DELIVERY_FLOW: &str = "deliver";

/// The flow name of callback executions, of [`DELIVERY_INTEGRATION`] too: each posts a
/// finished execution's answer to the URL its synchronous caller left.
pub const CALLBACK_FLOW: &str = "callback";

/// How deliveries to one endpoint are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOrdering {
    /// Deliveries go out independently; a failing one holds back nothing.
    #[default]
    None,
    /// Deliveries go out in message order: the next waits until the one before has
    /// succeeded or run out of attempts.
    Fifo,
}

/// What a user sets on an endpoint: the body of create and update. (Unknown fields are
/// refused by the API, not here: the answer's schema extends this one.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EndpointSettings {
    /// Where deliveries are POSTed (`http` or `https`).
    #[schema(example = "https://example.com/webhooks")]
    pub url: String,
    /// What it is, for people.
    #[serde(default)]
    pub description: String,
    /// The event types it receives: exact names, or patterns with `*` (`order.*`);
    /// empty: every type.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// A jq condition on the message (`{id, type, timestamp, data}`); the endpoint
    /// receives only messages for which it is true.
    #[serde(default)]
    #[schema(example = ".data.total > 100")]
    pub filter: Option<String>,
    /// Headers added to every delivery (never the signing headers).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// At most this many deliveries start per second.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<u32>,
    /// `none` or `fifo`.
    #[serde(default)]
    pub ordering: DeliveryOrdering,
    /// The waits between attempts (`["5s", "5m"]` means three attempts); default: the
    /// server's schedule.
    #[serde(default)]
    pub retry_schedule: Option<Vec<String>>,
    /// Whether deliveries are paused: new messages skip it and waiting deliveries fail.
    #[serde(default)]
    pub disabled: bool,
    /// Anything the user wants kept with it.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: BTreeMap<String, Value>,
    /// The tenant it belongs to; it receives only that tenant's messages.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub tenant: Option<String>,
}

/// An endpoint as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Endpoint {
    /// Its id.
    #[schema(value_type = String, example = "ep_01JD3Q1Y0R8Z3T6V9W2X5A7B4C")]
    pub id: EndpointId,
    /// What the user set.
    #[serde(flatten)]
    pub settings: EndpointSettings,
    /// Why it was disabled, when Switchboard disabled it (`410 Gone`, failing too long).
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed; `null` while the last one succeeded.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<Timestamp>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// An endpoint's signing secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EndpointSecrets {
    /// The secret every delivery is signed with (`whsec_…`).
    pub key: String,
    /// The secret before the last rotation, still signing alongside until it expires.
    pub previous: Option<PreviousSecret>,
}

/// A rotated-out secret in its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PreviousSecret {
    /// The secret.
    pub key: String,
    /// When it stops signing.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

impl EndpointSecrets {
    /// The keys that sign a delivery at `now`: the current one, and the previous one
    /// while its grace period lasts.
    pub fn signing_keys(&self, now: Timestamp) -> Vec<&str> {
        let mut keys = vec![self.key.as_str()];
        if let Some(previous) = &self.previous
            && previous.expires_at > now
        {
            keys.push(previous.key.as_str());
        }
        keys
    }
}

/// A message: one event for the endpoints subscribed to its type.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Message {
    /// Its id, sent as `webhook-id`; the caller's, or `msg_…`.
    pub id: String,
    /// Its event type (`order.created`).
    pub event_type: String,
    /// The data sent.
    pub payload: Value,
    /// The tenant whose endpoints receive it.
    pub tenant: Option<String>,
    /// When it was accepted.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// One delivery to create with a message, or later (a resend).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Its execution (of [`DELIVERY_FLOW`]).
    pub execution: NewExecution,
}

/// A delivery of a message to one endpoint, and how it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Delivery {
    /// The message.
    pub message_id: String,
    /// The endpoint.
    #[schema(value_type = String)]
    pub endpoint_id: EndpointId,
    /// The execution that delivers it; its steps are the attempts.
    #[schema(value_type = String)]
    pub execution_id: ExecutionId,
    /// The execution's status: `succeeded` once the endpoint took it.
    pub status: ExecutionStatus,
    /// When the next attempt is due, while it is `retrying`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
}

/// What [`OutboundStore::create_message`] did.
#[derive(Debug, Clone)]
pub struct MessageCreated {
    /// The message: the new one, or for a repeated id the first one.
    pub message: Message,
    /// Its deliveries.
    pub deliveries: Vec<Delivery>,
    /// Whether the id was already taken, so nothing new was stored.
    pub duplicate: bool,
}

/// How an attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// The endpoint answered 2xx.
    Succeeded,
    /// It did not.
    Failed,
}

impl AttemptStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// The status of that name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// One HTTP exchange with an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Attempt {
    /// Its number in the store's order, also the paging cursor.
    pub id: i64,
    /// The message.
    pub message_id: String,
    /// The endpoint.
    #[schema(value_type = String)]
    pub endpoint_id: EndpointId,
    /// The delivery execution.
    #[schema(value_type = String)]
    pub execution_id: ExecutionId,
    /// Which attempt of the delivery, from 1.
    pub attempt: u32,
    /// The URL it went to.
    pub url: String,
    /// When it was sent.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `succeeded` or `failed`.
    pub status: AttemptStatus,
    /// The HTTP status the endpoint answered, if it answered.
    pub response_status: Option<u16>,
    /// From sending to the end of the answer's body.
    pub latency_ms: u64,
    /// The answer's headers.
    #[schema(value_type = Object)]
    pub response_headers: Value,
    /// The first 16 KiB of the answer's body, as text.
    pub response_body: Option<String>,
    /// Whether the body was longer than what is kept.
    pub body_truncated: bool,
    /// Why it failed: `http_status`, `gone`, `redirect`, `connect`, `timeout`,
    /// `forbidden_address`, `transport`.
    pub error_kind: Option<String>,
    /// The failure, for people.
    pub error: Option<String>,
}

/// Which attempts to list.
#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    /// Only this message's.
    pub message: Option<String>,
    /// Only this endpoint's.
    pub endpoint: Option<EndpointId>,
    /// Only those that went this way.
    pub status: Option<AttemptStatus>,
}

/// What [`OutboundStore::record_attempt`] should do to the endpoint besides recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointVerdict {
    /// Nothing but the failing streak: cleared on success, started on failure.
    Track {
        /// After failing this long without a success, the endpoint is disabled.
        disable_after: Duration,
    },
    /// Disable it now (it answered `410 Gone`).
    Disable,
}

/// What recording an attempt did to its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecorded {
    /// The reason the endpoint was disabled by this attempt, if it was.
    pub disabled: Option<String>,
}

/// The outbound webhook part of the store.
#[async_trait]
pub trait OutboundStore: Send + Sync {
    /// Stores a new endpoint with its first signing secret.
    async fn create_endpoint(&self, endpoint: Endpoint, secret: String) -> Result<(), StoreError>;

    /// One endpoint.
    async fn endpoint(&self, id: &EndpointId) -> Result<Option<Endpoint>, StoreError>;

    /// Endpoints in creation order after `cursor`, only `tenant`'s when given.
    async fn endpoints(
        &self,
        tenant: Option<String>,
        limit: usize,
        cursor: Option<EndpointId>,
    ) -> Result<Page<Endpoint>, StoreError>;

    /// Every enabled endpoint of `tenant` (or with no tenant), for a fan-out.
    async fn subscribers(&self, tenant: Option<String>) -> Result<Vec<Endpoint>, StoreError>;

    /// Replaces an endpoint's settings. Enabling it clears why it was disabled and its
    /// failing streak. `None` when there is no such endpoint.
    async fn update_endpoint(
        &self,
        id: &EndpointId,
        settings: EndpointSettings,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// Deletes an endpoint with its secrets; its waiting deliveries fail when they come
    /// up. Whether it existed.
    async fn delete_endpoint(&self, id: &EndpointId) -> Result<bool, StoreError>;

    /// An endpoint's signing secrets.
    async fn endpoint_secrets(
        &self,
        id: &EndpointId,
    ) -> Result<Option<EndpointSecrets>, StoreError>;

    /// Makes `key` the endpoint's secret; the current one keeps signing until
    /// `previous_until`. `None` when there is no such endpoint.
    async fn rotate_secret(
        &self,
        id: &EndpointId,
        key: String,
        previous_until: Timestamp,
    ) -> Result<Option<EndpointSecrets>, StoreError>;

    /// Stores a message and queues its deliveries, in one transaction; a message whose id
    /// is taken stores nothing and answers the first one.
    async fn create_message(
        &self,
        message: Message,
        deliveries: Vec<NewDelivery>,
    ) -> Result<MessageCreated, StoreError>;

    /// One message with its deliveries.
    async fn message(&self, id: &str) -> Result<Option<MessageCreated>, StoreError>;

    /// Messages newest first, after `cursor`, only of `event_type` when given.
    async fn messages(
        &self,
        event_type: Option<String>,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<Page<Message>, StoreError>;

    /// Queues one more delivery of a stored message (a resend).
    async fn add_delivery(
        &self,
        message_id: &str,
        delivery: NewDelivery,
    ) -> Result<Delivery, StoreError>;

    /// Records an attempt, and updates its endpoint's failing streak (or disables it) in
    /// the same transaction.
    async fn record_attempt(
        &self,
        attempt: Attempt,
        verdict: EndpointVerdict,
    ) -> Result<AttemptRecorded, StoreError>;

    /// Attempts newest first, after `cursor`.
    async fn attempts(
        &self,
        filter: AttemptFilter,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<Page<Attempt>, StoreError>;

    /// The deliveries to `endpoint` that failed for good, of messages accepted in
    /// `[since, until)`, oldest first.
    async fn failed_deliveries(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<Delivery>, StoreError>;
}

impl DeliveryOrdering {
    /// The ordering as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fifo => "fifo",
        }
    }

    /// The ordering of that name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::None, Self::Fifo]
            .into_iter()
            .find(|ordering| ordering.as_str() == text)
    }
}
