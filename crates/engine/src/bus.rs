//! The built-in event bus: events published from outside or by `publish` steps, handed
//! to each subscriber at its own pace.
//!
//! The dispatcher reads the events after the furthest-behind cursor, once for all
//! subscribers. For each subscribing flow it queues one execution per event whose topic
//! matches the flow's pattern and whose data passes its filter, and moves the flow's
//! cursor past the events it has seen, in one transaction: an event is never handed to
//! a flow twice, nor skipped. A subscriber that fails only fails its own executions,
//! which retry as any other; the others move on.
//!
//! Outbound webhooks are one more subscriber (`_webhooks`): each event whose topic
//! matches an endpoint's event types becomes a message with the event's id, fanned out
//! like one posted to `/api/v1/messages`.

use std::sync::Arc;

use serde_json::{Value, json};
use switchboard_core::{Timestamp, topic};
use switchboard_project::{Flow, Trigger};
use switchboard_store::StoreError;
use switchboard_store::bus::{Advance, Event, NewEvent, Published};
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// The cursor of outbound webhook endpoints.
pub const WEBHOOKS_SUBSCRIBER: &str = "_webhooks";

/// The most events read in one round.
const BATCH: usize = 500;

/// The bus's own topics, about outbound webhooks. An event of one of them is not sent
/// to the endpoint it is about, which could only fail again.
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";
/// A delivery used its last attempt.
pub const ATTEMPT_EXHAUSTED: &str = "message.attempt.exhausted";

/// The source of events published from outside.
const API_SOURCE: &str = "/api";

/// An event published from outside, before it is checked.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The topic.
    pub topic: String,
    /// The data.
    pub data: Value,
    /// The id; made when not given.
    pub id: Option<String>,
    /// The ordering key.
    pub key: Option<String>,
}

/// An event could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A field is not usable; `field` names it.
    #[error("{message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Publishes an event from outside; durable when this returns. A repeated id
    /// publishes nothing and answers with the first event's position.
    pub async fn publish(&self, event: Publish) -> Result<Published, PublishError> {
        if !topic::is_valid(&event.topic, false) {
            return Err(PublishError::Invalid {
                field: "topic",
                message: topic::RULE.to_owned(),
            });
        }
        let id = match event.id {
            Some(id) if (1..=256).contains(&id.chars().count()) => id,
            Some(_) => {
                return Err(PublishError::Invalid {
                    field: "id",
                    message: String::from("an event id is 1 to 256 characters"),
                });
            }
            None => switchboard_core::ids::EventId::generate().to_string(),
        };
        if event
            .key
            .as_ref()
            .is_some_and(|key| key.chars().count() > 256)
        {
            return Err(PublishError::Invalid {
                field: "key",
                message: String::from("an ordering key is at most 256 characters"),
            });
        }
        let event = NewEvent {
            id,
            topic: event.topic,
            key: event.key,
            source: API_SOURCE.to_owned(),
            time: Timestamp::now(),
            data: event.data,
        };
        let published = self.store.publish(vec![event]).await?;
        if published.iter().any(|published| !published.duplicate) {
            self.metrics.events_published("api", 1);
            self.bus.notify_one();
        }
        published
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt(String::from("publishing answered nothing")).into())
    }

    /// Wakes the dispatcher (after a rewind).
    pub fn wake_bus(&self) {
        self.bus.notify_one();
    }

    /// The topic or pattern `subscriber` takes: its flow's `event` topic, or `*` for
    /// the outbound endpoints (which filter by their own event types). `None` when no
    /// flow of that name takes events.
    pub fn subscription_topic(&self, subscriber: &str) -> Option<String> {
        if subscriber == WEBHOOKS_SUBSCRIBER {
            return Some(String::from("*"));
        }
        match &self.subscribing_flow(subscriber)?.trigger {
            Trigger::Event(trigger) => Some(trigger.topic.clone()),
            _ => None,
        }
    }

    /// The flow of a cursor name.
    fn subscribing_flow(&self, subscriber: &str) -> Option<Arc<Flow>> {
        let (integration, flow) = subscriber.split_once('/')?;
        self.project().flow(integration, flow).cloned()
    }

    /// Gives each subscriber of the project a cursor (a new one starts at the head) and
    /// drops the cursors of flows that are gone. Done before requests are taken, so a
    /// subscriber sees every event published once the server answers.
    pub async fn sync_subscribers(&self) {
        let mut names: Vec<String> = self
            .subscribers()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.push(WEBHOOKS_SUBSCRIBER.to_owned());
        if let Err(error) = self.store.sync_cursors(names).await {
            tracing::error!(%error, "Could not set up the event bus's subscribers.");
        }
    }

    /// Every flow started by events, with its cursor's name (`<integration>/<flow>`).
    pub fn subscribers(&self) -> Vec<(String, Arc<Flow>)> {
        self.project()
            .integrations
            .values()
            .flat_map(|integration| integration.flows.values())
            .filter(|flow| matches!(flow.trigger, Trigger::Event(_)))
            .map(|flow| (subscriber_name(flow), Arc::clone(flow)))
            .collect()
    }

    /// The executions `flow` takes from `events`.
    fn subscribed(&self, flow: &Flow, events: &[&Event]) -> Vec<switchboard_store::NewExecution> {
        let Trigger::Event(trigger) = &flow.trigger else {
            return Vec::new();
        };
        let mut executions = Vec::new();
        for event in events {
            if !topic::matches(&trigger.topic, &event.topic) {
                continue;
            }
            let trigger_data = event_trigger(event);
            if let Some(filter) = &trigger.filter {
                let scope = self.scope(&flow.integration, &event.data, &trigger_data, &Value::Null);
                match filter.eval_one(&scope, &self.config.expression_limits) {
                    Ok(Value::Null | Value::Bool(false)) => continue,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, flow = %flow.name, event = %event.id, "The event filter failed; the event is not given to the flow.");
                        self.metrics
                            .event_filter_failed(&flow.integration, &flow.name);
                        continue;
                    }
                }
            }
            executions.push(self.prepare_or_plain(flow, trigger_data, event.data.clone()));
        }
        executions
    }
}

/// A flow's cursor name.
pub fn subscriber_name(flow: &Flow) -> String {
    format!("{}/{}", flow.integration, flow.name)
}

/// `$trigger` of an execution started by an event: the event without its data.
fn event_trigger(event: &Event) -> Value {
    json!({
        "kind": "event",
        "id": event.id,
        "topic": event.topic,
        "source": event.source,
        "time": event.time,
        "key": event.partitionkey,
        "sequence": event.sequence,
    })
}

/// Hands events to subscribers until `shutdown`, while this node leads, woken by each
/// publish and otherwise every poll interval.
pub(crate) async fn dispatch(engine: Arc<Engine>, shutdown: CancellationToken) {
    engine.sync_subscribers().await;
    loop {
        if !engine.until_leading(&shutdown).await {
            return;
        }
        let more = match round(&engine).await {
            Ok(more) => more,
            Err(error) => {
                tracing::error!(%error, "Could not hand events to subscribers.");
                false
            }
        };
        if more {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = engine.bus.notified() => {}
            () = tokio::time::sleep(engine.idle_poll()) => {}
        }
    }
}

/// One round: every subscriber behind the head takes up to [`BATCH`] events. Returns
/// whether there may be more.
async fn round(engine: &Engine) -> Result<bool, StoreError> {
    let cursors = engine.store.cursors().await?;
    let Some(from) = cursors.iter().map(|cursor| cursor.seq).min() else {
        return Ok(false);
    };
    let events = engine.store.events_after(from, BATCH).await?;
    let Some(last) = events.last().map(Event::seq) else {
        return Ok(false);
    };
    let mut advances = Vec::new();
    for cursor in cursors {
        let unseen: Vec<&Event> = events
            .iter()
            .filter(|event| event.seq() > cursor.seq)
            .collect();
        let Some(to) = unseen.last().map(|event| event.seq()) else {
            continue;
        };
        let executions = if cursor.subscriber == WEBHOOKS_SUBSCRIBER {
            engine.fan_out_events(&unseen).await?;
            Vec::new()
        } else {
            engine
                .subscribing_flow(&cursor.subscriber)
                .map(|flow| engine.subscribed(&flow, &unseen))
                .unwrap_or_default()
        };
        advances.push(Advance {
            subscriber: cursor.subscriber,
            from: cursor.seq,
            to,
            executions,
        });
    }
    let queued = engine.store.advance(advances).await?;
    if queued > 0 {
        engine.metrics.events_dispatched(queued);
        engine.wake.notify_one();
    }
    Ok(events.len() == BATCH && last > from)
}
