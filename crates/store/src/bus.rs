//! The built-in event bus and flow state: what the store keeps for them.
//!
//! An event is appended once to one log, whatever the number of subscribers; each
//! subscribing flow has its own cursor (the sequence number of the last event it was
//! given), so a slow or failing subscriber never holds back another. The engine reads
//! the log after a cursor, decides which events a flow takes (its topic pattern and
//! filter are jq and patterns, which the store does not evaluate) and hands back the
//! executions to queue together with the new cursor, in one transaction.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use switchboard_core::Timestamp;
use utoipa::ToSchema;

use crate::StoreError;
use crate::records::{NewExecution, Page};

/// An event to append to the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Its id; an id already on the bus appends nothing.
    pub id: String,
    /// Its topic (`order.created`).
    pub topic: String,
    /// The ordering key, when events of one key must be handled in order.
    pub key: Option<String>,
    /// Who published it: `/api`, or `/integrations/<integration>/flows/<flow>`.
    pub source: String,
    /// When it was published.
    pub time: Timestamp,
    /// Its JSON data.
    pub data: Value,
}

/// An event on the bus, shaped as a CloudEvent (JSON format, version 1.0) with the
/// `partitionkey` and `sequence` extensions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Event {
    /// Always `1.0`.
    pub specversion: &'static str,
    /// The event's id.
    pub id: String,
    /// The topic, as the CloudEvents `type`.
    #[serde(rename = "type")]
    pub topic: String,
    /// Who published it.
    pub source: String,
    /// When it was published.
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    /// The ordering key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitionkey: Option<String>,
    /// Its position on the bus, as a decimal string.
    pub sequence: String,
    /// Always `application/json`.
    pub datacontenttype: &'static str,
    /// Its data.
    pub data: Value,
}

impl Event {
    /// An event read back from the store.
    pub fn new(seq: u64, event: NewEvent) -> Self {
        Self {
            specversion: "1.0",
            id: event.id,
            topic: event.topic,
            source: event.source,
            time: event.time,
            partitionkey: event.key,
            sequence: seq.to_string(),
            datacontenttype: "application/json",
            data: event.data,
        }
    }

    /// Its position on the bus.
    pub fn seq(&self) -> u64 {
        self.sequence.parse().unwrap_or(0)
    }
}

/// What publishing an event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Published {
    /// The event's id.
    pub id: String,
    /// Its position on the bus (the first one's, for a repeated id).
    pub sequence: String,
    /// Whether the id was already on the bus, so nothing was appended.
    pub duplicate: bool,
}

/// One subscriber's place on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Its name: a flow as `<integration>/<flow>`, or a built-in consumer (`_webhooks`).
    pub subscriber: String,
    /// The sequence number of the last event it was given.
    pub seq: u64,
}

/// A subscriber moving on: the executions its events start, and where it now is.
#[derive(Debug, Clone)]
pub struct Advance {
    /// The subscriber.
    pub subscriber: String,
    /// Where it was; the advance applies only if it still is there.
    pub from: u64,
    /// Where it goes.
    pub to: u64,
    /// The executions to queue.
    pub executions: Vec<NewExecution>,
}

/// One topic with what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TopicStats {
    /// The topic.
    pub topic: String,
    /// How many of its events are kept.
    pub events: u64,
    /// The sequence number of its latest event.
    #[serde(skip)]
    pub last_seq: u64,
    /// When its latest event was published.
    #[schema(value_type = String, format = DateTime)]
    pub last_published_at: Timestamp,
}

/// A change to a flow's or an integration's state, written with its step.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// Whose state: `<integration>` or `<integration>/<flow>`.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The new value; `None` deletes the key.
    pub value: Option<Value>,
}

/// The bus and state half of the store.
#[async_trait]
pub trait BusStore: Send + Sync {
    /// Appends events, in one transaction; an event whose id is on the bus already is
    /// not appended again and answers with the first one's position.
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Published>, StoreError>;

    /// Up to `limit` events after sequence number `after`, oldest first.
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// The events of `topic`, newest first, before sequence number `before` when given.
    async fn topic_events(
        &self,
        topic: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<Event>, StoreError>;

    /// Every topic with events kept, by name.
    async fn topics(&self) -> Result<Vec<TopicStats>, StoreError>;

    /// The sequence number of the latest event (0 when the bus is empty).
    async fn head(&self) -> Result<u64, StoreError>;

    /// Makes the cursors those of `subscribers`: a new one starts at the head (it takes
    /// events published from now on), one no longer named is deleted. Returns them all.
    async fn sync_cursors(&self, subscribers: Vec<String>) -> Result<Vec<Cursor>, StoreError>;

    /// Every cursor.
    async fn cursors(&self) -> Result<Vec<Cursor>, StoreError>;

    /// Moves subscribers on and queues their executions, in one transaction. An advance
    /// whose subscriber is no longer at `from` (another process moved it) is skipped.
    /// Returns how many executions were queued.
    async fn advance(&self, advances: Vec<Advance>) -> Result<usize, StoreError>;

    /// Sets a subscriber back to just before the first event published at or after
    /// `since`, so it is given those events again. `None` when there is no such
    /// subscriber; else its new cursor.
    async fn rewind(&self, subscriber: &str, since: Timestamp) -> Result<Option<u64>, StoreError>;

    /// A state value.
    async fn state(&self, namespace: &str, key: &str) -> Result<Option<Value>, StoreError>;
}
