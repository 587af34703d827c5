//! The built-in event bus: publishing from outside, topics with their recent events,
//! subscribers with their lag, and rewinding a subscriber to replay events.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::{Timestamp, topic};
use switchboard_engine::bus::{Publish, PublishError, WEBHOOKS_SUBSCRIBER};
use switchboard_store::Page;
use switchboard_store::bus::{Cursor, Event, Published};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ListQuery, json_body, store_error, timestamp};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The event bus routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_event))
        .routes(routes!(list_topics))
        .routes(routes!(topic_events))
        .routes(routes!(list_subscriptions))
        .routes(routes!(rewind_subscription))
}

/// An event to publish.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// The topic: 1 to 256 letters, digits, `.`, `_`, `-` or `:` (`order.created`).
    #[schema(example = "order.created", pattern = "^[A-Za-z0-9._:-]{1,256}$")]
    pub topic: String,
    /// The event's data, any JSON.
    #[serde(default)]
    pub data: Value,
    /// Its id; publishing an id already on the bus publishes nothing. Made when not given.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub id: Option<String>,
    /// An ordering key, for subscribers that handle one key's events in order.
    #[serde(default)]
    #[schema(max_length = 256)]
    pub key: Option<String>,
}

/// Publishes an event; subscribers get it after this answers. A repeated `id` answers
/// 200 with the first event's position.
#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    request_body = PublishEvent,
    responses(
        (status = 202, description = "Published.", body = Published),
        (status = 200, description = "The id was already on the bus; nothing was published.", body = Published),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 422, description = "A field is wrong; `error.path` names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn publish_event(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let event: PublishEvent = json_body(&body, None)?;
    let published = state
        .engine
        .publish(Publish {
            topic: event.topic,
            data: event.data,
            id: event.id,
            key: event.key,
        })
        .await
        .map_err(|error| match error {
            PublishError::Invalid { field, message } => {
                ApiError::unprocessable("invalid_field", message).at(format!("body.{field}"))
            }
            PublishError::Store(error) => store_error(error),
        })?;
    let status = if published.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, axum::Json(published)).into_response())
}

/// A subscriber of the bus and how far behind it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// `<integration>/<flow>`, or `_webhooks` for outbound webhook endpoints.
    pub subscriber: String,
    /// The topic or pattern it takes (`*` for the endpoints, which filter by their
    /// own event types).
    pub topic: String,
    /// The sequence number of the last event it was given.
    pub cursor: String,
    /// How many events were published after that and are not yet handed to it.
    pub lag: u64,
}

/// A topic as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicView {
    /// The topic.
    pub topic: String,
    /// How many of its events are kept.
    pub events: u64,
    /// When its latest event was published.
    #[schema(value_type = String, format = DateTime)]
    pub last_published_at: Timestamp,
    /// The subscribers whose pattern takes it.
    pub subscribers: Vec<SubscriptionView>,
}

/// Every subscriber with its cursor and lag.
async fn subscriptions(state: &AppState) -> Result<Vec<SubscriptionView>, ApiError> {
    let store = state.engine.store();
    let head = store.head().await.map_err(store_error)?;
    let cursors = store.cursors().await.map_err(store_error)?;
    Ok(cursors
        .into_iter()
        .filter_map(|Cursor { subscriber, seq }| {
            let topic = state.engine.subscription_topic(&subscriber)?;
            Some(SubscriptionView {
                subscriber,
                topic,
                cursor: seq.to_string(),
                lag: head.saturating_sub(seq),
            })
        })
        .collect())
}

/// Every topic with events kept, with its subscribers.
#[utoipa::path(get, path = "/api/v1/topics", tag = "events",
    responses(
        (status = 200, description = "The topics, on one page.", body = Page<TopicView>),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn list_topics(
    State(state): State<AppState>,
) -> Result<axum::Json<Page<TopicView>>, ApiError> {
    let topics = state.engine.store().topics().await.map_err(store_error)?;
    let subscriptions = subscriptions(&state).await?;
    let items = topics
        .into_iter()
        .map(|stats| TopicView {
            subscribers: subscriptions
                .iter()
                .filter(|subscription| topic::matches(&subscription.topic, &stats.topic))
                .cloned()
                .collect(),
            topic: stats.topic,
            events: stats.events,
            last_published_at: stats.last_published_at,
        })
        .collect();
    Ok(axum::Json(Page {
        items,
        next_cursor: None,
    }))
}

/// A topic's events, newest first, as CloudEvents.
#[utoipa::path(get, path = "/api/v1/topics/{topic}/events", tag = "events",
    params(
        ("topic" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,256}$", description = "The topic."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size; 50 when not given."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,18}$", description = "The `next_cursor` of the page before."),
    ),
    responses(
        (status = 200, description = "One page of events.", body = Page<Event>),
        (status = 400, description = "A query parameter is unknown or invalid.", body = ErrorBody),
        (status = 404, description = "The name is not a topic.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn topic_events(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page<Event>>, ApiError> {
    if !topic::is_valid(&topic, false) {
        return Err(ApiError::not_found(format!(
            "there is no topic `{topic}`: {}",
            topic::RULE
        )));
    }
    let query = ListQuery::parse(query.as_deref(), &[])?;
    let before = query
        .numeric_cursor()?
        .map(|cursor| u64::try_from(cursor).unwrap_or(0));
    let page = state
        .engine
        .store()
        .topic_events(&topic, query.limit, before)
        .await
        .map_err(store_error)?;
    Ok(axum::Json(page))
}

/// Every subscriber of the bus with its cursor and lag.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "events",
    responses(
        (status = 200, description = "The subscribers, on one page.", body = Page<SubscriptionView>),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn list_subscriptions(
    State(state): State<AppState>,
) -> Result<axum::Json<Page<SubscriptionView>>, ApiError> {
    Ok(axum::Json(Page {
        items: subscriptions(&state).await?,
        next_cursor: None,
    }))
}

/// Where to rewind a subscriber to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rewind {
    /// The subscriber gets again every event published at or after this RFC 3339 time.
    #[schema(format = DateTime)]
    pub since: String,
}

/// Sets a flow's cursor back so it gets again every event published since a time (a
/// replay after a fix). Events past retention are gone and are not replayed.
#[utoipa::path(post, path = "/api/v1/subscriptions/{integration}/{flow}/rewind", tag = "events",
    params(
        ("integration" = String, Path, description = "The integration."),
        ("flow" = String, Path, description = "The flow with an `event` trigger."),
    ),
    request_body = Rewind,
    responses(
        (status = 200, description = "Rewound; the subscriber's new place.", body = SubscriptionView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 404, description = "No flow of that name takes events.", body = ErrorBody),
        (status = 422, description = "A field is wrong; `error.path` names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn rewind_subscription(
    State(state): State<AppState>,
    Path((integration, flow)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::Json<SubscriptionView>, ApiError> {
    let rewind: Rewind = json_body(&body, None)?;
    let since = timestamp(&rewind.since, "body.since")?;
    let subscriber = format!("{integration}/{flow}");
    let not_found = || {
        ApiError::not_found(format!(
            "the integration `{integration}` has no flow `{flow}` with an `event` trigger"
        ))
    };
    let Some(topic) = state
        .engine
        .subscription_topic(&subscriber)
        .filter(|_| subscriber != WEBHOOKS_SUBSCRIBER)
    else {
        return Err(not_found());
    };
    let store = state.engine.store();
    let cursor = store
        .rewind(&subscriber, since)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let head = store.head().await.map_err(store_error)?;
    state.engine.wake_bus();
    Ok(axum::Json(SubscriptionView {
        subscriber,
        topic,
        cursor: cursor.to_string(),
        lag: head.saturating_sub(cursor),
    }))
}
