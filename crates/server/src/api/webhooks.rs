//! Outbound webhooks: subscriber endpoints with their signing secrets, messages fanned
//! out to them, delivery attempts, resends and recovers.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use switchboard_core::ids::EndpointId;
use switchboard_core::{HumanDuration, Timestamp};
use switchboard_engine::outbound::{NewMessage, OutboundError};
use switchboard_store::Page;
use switchboard_store::outbound::{
    Attempt, AttemptFilter, AttemptStatus, Delivery, Endpoint, EndpointSecrets, EndpointSettings,
    Message, MessageCreated,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ListQuery, json_body, store_error, timestamp};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::jobs::JobView;

/// The outbound webhook routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
        .routes(routes!(endpoint_attempts))
        .routes(routes!(recover_endpoint))
        .routes(routes!(post_message, list_messages))
        .routes(routes!(get_message))
        .routes(routes!(message_attempts))
        .routes(routes!(resend_message))
}

/// The fields of an endpoint's settings.
const ENDPOINT_FIELDS: [&str; 11] = [
    "url",
    "description",
    "event_types",
    "filter",
    "headers",
    "rate_limit",
    "ordering",
    "retry_schedule",
    "disabled",
    "metadata",
    "tenant",
];

/// The answer to an outbound error.
fn outbound_error(error: OutboundError) -> ApiError {
    match error {
        OutboundError::Invalid { path, message } => {
            ApiError::unprocessable("invalid_field", message).at(format!("body.{path}"))
        }
        OutboundError::EndpointNotFound(_) | OutboundError::MessageNotFound(_) => {
            ApiError::not_found(error.to_string())
        }
        OutboundError::Store(error) => ApiError::store_unavailable(&error),
        OutboundError::Random(_) => ApiError::internal(&error),
    }
}

fn endpoint_id(id: &str) -> Result<EndpointId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("there is no endpoint `{id}`")))
}

/// Creates an endpoint with a new signing secret (read it at `GET …/secret`).
#[utoipa::path(post, path = "/api/v1/endpoints", tag = "webhooks",
    request_body = EndpointSettings,
    responses(
        (status = 201, description = "The endpoint.", body = Endpoint),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 422, description = "A field is wrong; `error.path` names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn create_endpoint(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Endpoint>), ApiError> {
    let settings: EndpointSettings = json_body(&body, Some(&ENDPOINT_FIELDS))?;
    let endpoint = state
        .engine
        .create_endpoint(settings)
        .await
        .map_err(outbound_error)?;
    Ok((StatusCode::CREATED, axum::Json(endpoint)))
}

/// Endpoints in creation order, a page at a time.
#[utoipa::path(get, path = "/api/v1/endpoints", tag = "webhooks",
    params(
        ("tenant" = Option<String>, Query, description = "Only this tenant's."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size; 50 when not given."),
        ("cursor" = Option<String>, Query, pattern = "^ep_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The `next_cursor` of the page before."),
    ),
    responses(
        (status = 200, description = "One page of endpoints.", body = Page<Endpoint>),
        (status = 400, description = "A query parameter is unknown or invalid.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn list_endpoints(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page<Endpoint>>, ApiError> {
    let mut query = ListQuery::parse(query.as_deref(), &["tenant"])?;
    let cursor = query
        .cursor
        .as_deref()
        .map(|cursor| {
            cursor.parse::<EndpointId>().map_err(|_| {
                ApiError::invalid_query(
                    "cursor",
                    format!("`{cursor}` is not a cursor from this list"),
                )
            })
        })
        .transpose()?;
    let page = state
        .engine
        .store()
        .endpoints(query.filters.remove("tenant"), query.limit, cursor)
        .await
        .map_err(store_error)?;
    Ok(axum::Json(page))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, pattern = "^ep_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The endpoint.", body = Endpoint),
        (status = 404, description = "No endpoint has that id.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn get_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Endpoint>, ApiError> {
    let id = endpoint_id(&id)?;
    state
        .engine
        .store()
        .endpoint(&id)
        .await
        .map_err(store_error)?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("there is no endpoint `{id}`")))
}

/// Replaces an endpoint's settings; `disabled: false` enables it again and clears its
/// failing streak.
#[utoipa::path(put, path = "/api/v1/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, pattern = "^ep_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The endpoint's id.")),
    request_body = EndpointSettings,
    responses(
        (status = 200, description = "The endpoint as it is now.", body = Endpoint),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 404, description = "No endpoint has that id.", body = ErrorBody),
        (status = 422, description = "A field is wrong; `error.path` names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn update_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<Endpoint>, ApiError> {
    let id = endpoint_id(&id)?;
    let settings: EndpointSettings = json_body(&body, Some(&ENDPOINT_FIELDS))?;
    let endpoint = state
        .engine
        .update_endpoint(&id, settings)
        .await
        .map_err(outbound_error)?;
    Ok(axum::Json(endpoint))
}

/// Deletes an endpoint; its waiting deliveries fail when they come up.
#[utoipa::path(delete, path = "/api/v1/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, pattern = "^ep_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The endpoint's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No endpoint has that id.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn delete_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = endpoint_id(&id)?;
    if state
        .engine
        .store()
        .delete_endpoint(&id)
        .await
        .map_err(store_error)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("there is no endpoint `{id}`")))
    }
}

/// The endpoint's signing secret, and the previous one while it still signs.
#[utoipa::path(get, path = "/api/v1/endpoints/{id}/secret", tag = "webhooks",
    params(("id" = String, Path, pattern = "^ep_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The secrets.", body = EndpointSecrets),
        (status = 404, description = "No endpoint has that id.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn get_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<EndpointSecrets>, ApiError> {
    let id = endpoint_id(&id)?;
    let mut secrets = state
        .engine
        .store()
        .endpoint_secrets(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("there is no endpoint `{id}`")))?;
    if secrets
        .previous
        .as_ref()
        .is_some_and(|previous| previous.expires_at <= Timestamp::now())
    {
        secrets.previous = None;
    }
    Ok(axum::Json(secrets))
}

/// A secret rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// The new secret (`whsec_` and the base64 of 24 to 64 bytes); generated when absent.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{32,88}={0,2}$")]
    key: Option<String>,
    /// How long the old secret keeps signing alongside (`24h` when absent).
    #[schema(example = "24h", pattern = "^[0-9]+(ms|s|m|h|d)$")]
    grace_period: Option<String>,
}

/// Gives the endpoint a new secret; the old one keeps signing for the grace period, both
/// signatures in one `webhook-signature` header.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/secret/rotate", tag = "webhooks",
    params(("id" = String, Path, pattern = "^ep_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The endpoint's id.")),
    request_body(content = Option<Rotation>, description = "Optional; an empty body generates a secret with the default grace."),
    responses(
        (status = 200, description = "The secrets now.", body = EndpointSecrets),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 404, description = "No endpoint has that id.", body = ErrorBody),
        (status = 422, description = "A field is wrong; `error.path` names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<EndpointSecrets>, ApiError> {
    let id = endpoint_id(&id)?;
    let rotation: Rotation = if body.trim_ascii().is_empty() || body.trim_ascii() == b"null" {
        Rotation::default()
    } else {
        json_body(&body, None)?
    };
    let grace = rotation
        .grace_period
        .as_deref()
        .map(|text| {
            text.parse::<HumanDuration>()
                .map(|duration| duration.0)
                .map_err(|error| {
                    ApiError::unprocessable("invalid_field", error.to_string())
                        .at("body.grace_period")
                })
        })
        .transpose()?;
    let secrets = state
        .engine
        .rotate_secret(&id, rotation.key, grace)
        .await
        .map_err(outbound_error)?;
    Ok(axum::Json(secrets))
}

/// Attempts to the endpoint, newest first.
#[utoipa::path(get, path = "/api/v1/endpoints/{id}/attempts", tag = "webhooks",
    params(
        ("id" = String, Path, pattern = "^ep_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The endpoint's id."),
        ("status" = Option<AttemptStatus>, Query, description = "Only attempts that went this way."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size; 50 when not given."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,18}$", description = "The `next_cursor` of the page before."),
    ),
    responses(
        (status = 200, description = "One page of attempts.", body = Page<Attempt>),
        (status = 400, description = "A query parameter is unknown or invalid.", body = ErrorBody),
        (status = 404, description = "No endpoint has that id.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn endpoint_attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page<Attempt>>, ApiError> {
    let id = endpoint_id(&id)?;
    let query = ListQuery::parse(query.as_deref(), &["status"])?;
    let status = query
        .filters
        .get("status")
        .map(|status| {
            AttemptStatus::parse(status).ok_or_else(|| {
                ApiError::invalid_query(
                    "status",
                    format!("`{status}` is not an attempt status; use succeeded or failed"),
                )
            })
        })
        .transpose()?;
    let store = state.engine.store();
    if store.endpoint(&id).await.map_err(store_error)?.is_none() {
        return Err(ApiError::not_found(format!("there is no endpoint `{id}`")));
    }
    let filter = AttemptFilter {
        endpoint: Some(id),
        status,
        message: None,
    };
    let page = store
        .attempts(filter, query.limit, query.numeric_cursor()?)
        .await
        .map_err(store_error)?;
    Ok(axum::Json(page))
}

/// Which failed deliveries a recover resends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// Messages accepted at or after this time (RFC 3339).
    #[schema(format = DateTime)]
    since: String,
    /// Messages accepted before this time (RFC 3339); now when absent.
    #[schema(format = DateTime)]
    until: Option<String>,
}

/// Resends, in the background, every delivery to the endpoint that failed for good, of
/// messages accepted in the window; follow it at `GET /api/v1/jobs/{id}`.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/recover", tag = "webhooks",
    params(("id" = String, Path, pattern = "^ep_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The endpoint's id.")),
    request_body = Recover,
    responses(
        (status = 202, description = "The job started.", body = JobView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 404, description = "No endpoint has that id.", body = ErrorBody),
        (status = 422, description = "A field is wrong; `error.path` names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn recover_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<JobView>), ApiError> {
    let id = endpoint_id(&id)?;
    let recover: Recover = json_body(&body, None)?;
    let since = timestamp(&recover.since, "body.since")?;
    let until = match &recover.until {
        Some(until) => timestamp(until, "body.until")?,
        None => Timestamp::now(),
    };
    if state
        .engine
        .store()
        .endpoint(&id)
        .await
        .map_err(store_error)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("there is no endpoint `{id}`")));
    }
    let job = state.engine.start_recover(id, since, until);
    Ok((StatusCode::ACCEPTED, axum::Json(job.into())))
}

/// A message to post.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// Its event type; endpoints subscribed to it receive it.
    #[schema(example = "order.created", pattern = "^[A-Za-z0-9._:-]{1,256}$")]
    event_type: String,
    /// The data sent, as `data` of the delivered body.
    payload: Value,
    /// Its id, sent as `webhook-id`; a repeated id is accepted once. Generated when
    /// absent.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,256}$")]
    id: Option<String>,
    /// The tenant whose endpoints receive it; without one, endpoints without a tenant do.
    #[schema(min_length = 1, max_length = 256)]
    tenant: Option<String>,
}

/// A message with its deliveries.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct MessageView {
    /// The message.
    #[serde(flatten)]
    message: Message,
    /// One per endpoint it went to.
    deliveries: Vec<Delivery>,
}

impl From<MessageCreated> for MessageView {
    fn from(created: MessageCreated) -> Self {
        Self {
            message: created.message,
            deliveries: created.deliveries,
        }
    }
}

/// Stores a message and queues a delivery to every endpoint subscribed to its type,
/// durably, before answering. A repeated `id` answers the first message with 200.
#[utoipa::path(post, path = "/api/v1/messages", tag = "webhooks",
    request_body = PostMessage,
    responses(
        (status = 202, description = "Accepted; deliveries are queued.", body = MessageView),
        (status = 200, description = "The id was already used; the first message.", body = MessageView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 422, description = "A field is wrong; `error.path` names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn post_message(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let posted: PostMessage = json_body(&body, None)?;
    let created = state
        .engine
        .post_message(NewMessage {
            event_type: posted.event_type,
            payload: posted.payload,
            id: posted.id,
            tenant: posted.tenant,
        })
        .await
        .map_err(outbound_error)?;
    let status = if created.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, axum::Json(MessageView::from(created))).into_response())
}

/// Messages, newest first.
#[utoipa::path(get, path = "/api/v1/messages", tag = "webhooks",
    params(
        ("event_type" = Option<String>, Query, description = "Only messages of this type."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size; 50 when not given."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,18}$", description = "The `next_cursor` of the page before."),
    ),
    responses(
        (status = 200, description = "One page of messages.", body = Page<Message>),
        (status = 400, description = "A query parameter is unknown or invalid.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn list_messages(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page<Message>>, ApiError> {
    let mut query = ListQuery::parse(query.as_deref(), &["event_type"])?;
    let cursor = query.numeric_cursor()?;
    let page = state
        .engine
        .store()
        .messages(query.filters.remove("event_type"), query.limit, cursor)
        .await
        .map_err(store_error)?;
    Ok(axum::Json(page))
}

/// One message with its deliveries and how each stands.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "webhooks",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,256}$", description = "The message's id.")),
    responses(
        (status = 200, description = "The message.", body = MessageView),
        (status = 404, description = "No message has that id.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn get_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<MessageView>, ApiError> {
    state
        .engine
        .store()
        .message(&id)
        .await
        .map_err(store_error)?
        .map(|created| axum::Json(created.into()))
        .ok_or_else(|| ApiError::not_found(format!("there is no message `{id}`")))
}

/// Attempts to deliver the message, newest first.
#[utoipa::path(get, path = "/api/v1/messages/{id}/attempts", tag = "webhooks",
    params(
        ("id" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,256}$", description = "The message's id."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size; 50 when not given."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,18}$", description = "The `next_cursor` of the page before."),
    ),
    responses(
        (status = 200, description = "One page of attempts.", body = Page<Attempt>),
        (status = 400, description = "A query parameter is unknown or invalid.", body = ErrorBody),
        (status = 404, description = "No message has that id.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn message_attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page<Attempt>>, ApiError> {
    let query = ListQuery::parse(query.as_deref(), &[])?;
    let store = state.engine.store();
    if store.message(&id).await.map_err(store_error)?.is_none() {
        return Err(ApiError::not_found(format!("there is no message `{id}`")));
    }
    let filter = AttemptFilter {
        message: Some(id),
        ..AttemptFilter::default()
    };
    let page = store
        .attempts(filter, query.limit, query.numeric_cursor()?)
        .await
        .map_err(store_error)?;
    Ok(axum::Json(page))
}

/// Delivers the message to the endpoint once more, whatever became of earlier attempts.
#[utoipa::path(post, path = "/api/v1/messages/{id}/resend/{endpoint}", tag = "webhooks",
    params(
        ("id" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,256}$", description = "The message's id."),
        ("endpoint" = String, Path, pattern = "^ep_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The endpoint's id."),
    ),
    responses(
        (status = 202, description = "The new delivery, queued.", body = Delivery),
        (status = 404, description = "No such message or endpoint.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn resend_message(
    State(state): State<AppState>,
    Path((id, endpoint)): Path<(String, String)>,
) -> Result<(StatusCode, axum::Json<Delivery>), ApiError> {
    let endpoint = endpoint_id(&endpoint)?;
    let delivery = state
        .engine
        .resend(&id, &endpoint, None)
        .await
        .map_err(outbound_error)?;
    Ok((StatusCode::ACCEPTED, axum::Json(delivery)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_name_the_field() {
        let body = Bytes::from_static(br#"{"url": "https://x.test", "event_types": ["a", 3]}"#);
        let error = json_body::<EndpointSettings>(&body, Some(&ENDPOINT_FIELDS)).unwrap_err();
        assert_eq!(error.code(), "invalid_field");
        let body = Bytes::from_static(b"{");
        let error = json_body::<EndpointSettings>(&body, None).unwrap_err();
        assert_eq!(error.code(), "invalid_json");
        let body = Bytes::from_static(br#"["https://x.test"]"#);
        let error = json_body::<EndpointSettings>(&body, None).unwrap_err();
        assert_eq!(error.code(), "invalid_field", "an array is not an object");
    }
}
