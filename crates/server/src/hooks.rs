//! Inbound webhooks: `/hooks/{integration}/{flow}`.
//!
//! Route, method and size are checked before the body is read in full; the body is
//! parsed by the flow's `accept` and its content type; the execution is queued; and only
//! once the store has committed it is the caller answered `202 {"execution_id": …}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value, json};
use switchboard_core::{ExecutionId, Timestamp};
use switchboard_engine::SubmitError;
use switchboard_project::{BodyFormat, Flow};
use switchboard_store::Enqueued;
use switchboard_telemetry::metrics::WebhookOutcome;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The hook routes. A hook takes whichever methods its flow allows, so it is routed for
/// every method; the document describes POST, the usual one.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route("/hooks/{integration}/{flow}", any(receive))
}

/// Starts an execution of a webhook flow with the request as its input.
///
/// The answer comes once the execution is committed to the store: a `202` means it is
/// durable and will run.
#[utoipa::path(post, path = "/hooks/{integration}/{flow}", tag = "hooks",
    params(
        ("integration" = String, Path, description = "The integration's name."),
        ("flow" = String, Path, description = "The webhook flow's name."),
    ),
    request_body(description = "Anything; the flow's `accept` says which formats it takes.", content(
        (serde_json::Value = "application/json"),
        (Object = "application/x-www-form-urlencoded"),
        (String = "text/plain"),
    )),
    responses(
        (status = 202, description = "Accepted and durable.", body = Accepted),
        (status = 200, description = "A provider's handshake answered by the flow's `challenge` (nothing started), or a repeat of a request seen within the flow's `dedupe_window`: nothing new was started; `execution_id` names the first one's execution.", body = Accepted),
        (status = 400, description = "The body does not parse as the flow's format.", body = ErrorBody),
        (status = 401, description = "The flow checks a signature and this request's is missing, stale or wrong (`missing_signature`, `stale_timestamp`, `invalid_signature`); nothing was stored.", body = ErrorBody),
        (status = 404, description = "No webhook flow has that name.", body = ErrorBody),
        (status = 405, description = "The flow does not take this method; `Allow` names those it does.", body = ErrorBody),
        (status = 413, description = "The body is over the size limit.", body = ErrorBody),
        (status = 415, description = "The flow does not take this content type.", body = ErrorBody),
        (status = 422, description = "One of the flow's keys (`dedupe`, `concurrency`, `ordering`, `debounce`, `throttle`) could not be computed from the request.", body = ErrorBody),
        (status = 503, description = "The store does not answer; nothing was accepted.", body = ErrorBody),
    ))]
pub(crate) async fn receive(
    State(state): State<AppState>,
    Path((integration, flow_name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let flow = request_flow(&state, &integration, &flow_name, "webhook")?;
    intake(&state, &flow, method, uri, headers, body).await
}

/// The flow of `integration` named `flow` whose trigger is of `kind` (`webhook` or
/// `invoke`); a 404 naming what was asked for when there is none.
pub(crate) fn request_flow(
    state: &AppState,
    integration: &str,
    flow: &str,
    kind: &str,
) -> Result<Arc<Flow>, ApiError> {
    let found = state
        .engine
        .project()
        .flow(integration, flow)
        .filter(|found| found.trigger.kind() == kind)
        .cloned();
    found.ok_or_else(|| {
        state
            .engine
            .metrics()
            .webhook_received("", "", WebhookOutcome::Rejected("not_found"));
        ApiError::not_found(format!(
            "no {kind} flow `{flow}` in integration `{integration}`"
        ))
    })
}

/// Takes a request to a `webhook` or `invoke` flow: answers `202` once it is durable,
/// or, when the flow answers synchronously, its answer.
pub(crate) async fn intake(
    state: &AppState,
    flow: &Flow,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let sync = flow
        .trigger
        .request()
        .and_then(|request| request.sync.as_ref());
    let callback = match sync {
        Some(sync) => crate::invoke::callback_url(state, sync, &uri, &headers)?,
        None => None,
    };
    let accepted = accept(state, flow, method, uri, headers, body).await;
    let (integration, flow_name) = (flow.integration.as_str(), flow.name.as_str());
    let metrics = state.engine.metrics();
    match accepted {
        Ok(Received::Handshake(answer)) => {
            metrics.webhook_received(integration, flow_name, WebhookOutcome::Handshake);
            Ok(match answer {
                Value::String(text) => {
                    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
                }
                other => axum::Json(other).into_response(),
            })
        }
        Ok(Received::Queued(enqueued)) => {
            let (outcome, status) = if enqueued.duplicate {
                (WebhookOutcome::Duplicate, StatusCode::OK)
            } else {
                (WebhookOutcome::Accepted, StatusCode::ACCEPTED)
            };
            metrics.webhook_received(integration, flow_name, outcome);
            tracing::Span::current().record("execution_id", enqueued.id.as_str());
            if let Some(sync) = sync {
                return crate::invoke::answer(state, flow, sync, enqueued.id, callback).await;
            }
            let accepted = Accepted {
                execution_id: enqueued.id,
                duplicate: enqueued.duplicate,
            };
            Ok((status, axum::Json(accepted)).into_response())
        }
        Err(error) => {
            metrics.webhook_received(
                integration,
                flow_name,
                WebhookOutcome::Rejected(error.code()),
            );
            Err(error)
        }
    }
}

/// The answer to an accepted webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The execution it started; for a duplicate, the one its first delivery started.
    #[schema(value_type = String, example = "exe_01JD3Q1Y0R8Z3T6V9W2X5A7B4C")]
    pub execution_id: ExecutionId,
    /// Present and `true` when the request repeats one seen within the flow's
    /// `dedupe_window`: nothing new was started.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// What became of a request a webhook flow took.
enum Received {
    /// Its execution was queued (or, a duplicate, an earlier one holds its key).
    Queued(Enqueued),
    /// It was a provider's handshake; this is the answer.
    Handshake(Value),
}

/// Checks, reads and parses a request to a webhook flow, answers it when it is a
/// handshake, and otherwise checks its signature and queues its execution.
async fn accept(
    state: &AppState,
    flow: &Flow,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Received, ApiError> {
    let received_at = Timestamp::now();
    let Some(webhook) = flow.trigger.request() else {
        return Err(ApiError::not_found(format!(
            "`{}` of `{}` takes no requests",
            flow.name, flow.integration
        )));
    };
    if !webhook
        .methods
        .iter()
        .any(|allowed| allowed == method.as_str())
    {
        return Err(ApiError::method_not_allowed(
            method.as_str(),
            &webhook.methods,
        ));
    }
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > state.max_body) {
        return Err(ApiError::payload_too_large(state.max_body));
    }
    let bytes = read_body(body, state.max_body).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let data = parse_body(webhook.accept, content_type, &bytes)?;
    let trigger = json!({
        "kind": flow.trigger.kind(),
        "body": data,
        "headers": switchboard_core::headers::headers_object(&headers),
        "query": query_object(uri.query().unwrap_or("")),
        "method": method.as_str(),
        "path": uri.path(),
        "received_at": received_at,
    });
    // A handshake reveals nothing and starts nothing, so it is answered before the
    // signature check: some providers send theirs unsigned.
    if let Some(answer) = state
        .engine
        .challenge(flow, &trigger, &data)
        .map_err(submit_error)?
    {
        return Ok(Received::Handshake(answer));
    }
    if let Some(verify) = &webhook.verify {
        let secrets = state
            .engine
            .verify_secrets(&flow.integration, &verify.secrets)
            .map_err(|error| ApiError::internal(&format!("the flow's verify secret: {error}")))?;
        crate::verify::check(
            &verify.scheme,
            &secrets,
            verify.tolerance,
            &headers,
            &bytes,
            received_at,
        )
        .map_err(|refused| ApiError::unauthorized(refused.code, refused.message))?;
    }
    state
        .engine
        .submit(flow, trigger, data)
        .await
        .map(Received::Queued)
        .map_err(submit_error)
}

/// The answer to a key (or challenge) that could not be computed, or a store failure.
fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::Key { what, source } => {
            let code = match what {
                "dedupe" => "dedupe_key_failed",
                "concurrency" => "concurrency_key_failed",
                "ordering" => "ordering_key_failed",
                "debounce" => "debounce_key_failed",
                "challenge" => "challenge_failed",
                _ => "throttle_key_failed",
            };
            ApiError::unprocessable(
                code,
                format!("the flow's {what} key could not be computed from this request: {source}"),
            )
            .at("body")
        }
        SubmitError::Store(error) => ApiError::store_unavailable(&error),
    }
}

/// Reads the body, stopping as soon as it passes `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::payload_too_large(limit)),
        Err(error) => Err(ApiError::invalid_body(format!(
            "the body could not be read: {error}"
        ))),
    }
}

/// The body as the flow's data, by the flow's `accept` and the request's content type.
///
/// `curl -d @file.json` sends JSON labelled as a form; so under `any`, a body labelled as
/// a form (or not labelled) that parses as JSON is taken as JSON.
fn parse_body(accept: BodyFormat, content_type: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let labelled_json = media == "application/json" || media.ends_with("+json");
    let labelled_form = media == "application/x-www-form-urlencoded";
    let unlabelled = media.is_empty();
    let text = || Value::String(String::from_utf8_lossy(bytes).into_owned());
    match accept {
        BodyFormat::Text => Ok(text()),
        BodyFormat::Json if labelled_json || labelled_form || unlabelled => parse_json(bytes),
        BodyFormat::Json => Err(ApiError::unsupported_media_type(format!(
            "this hook takes JSON; the request's content type is `{media}`"
        ))),
        BodyFormat::Form if labelled_form || unlabelled => Ok(form_object(bytes)),
        BodyFormat::Form => Err(ApiError::unsupported_media_type(format!(
            "this hook takes application/x-www-form-urlencoded; the request's content type is `{media}`"
        ))),
        BodyFormat::Any if labelled_json => parse_json(bytes),
        BodyFormat::Any if bytes.is_empty() => Ok(Value::Null),
        BodyFormat::Any if labelled_form || unlabelled => Ok(serde_json::from_slice(bytes)
            .unwrap_or_else(|_| {
                if labelled_form {
                    form_object(bytes)
                } else {
                    text()
                }
            })),
        BodyFormat::Any => Ok(text()),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ApiError::invalid_json(format!("the body is not valid JSON: {error}")))
}

/// Name-value pairs as an object; a name given several times holds a list.
fn pairs_object<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> Value {
    let mut object = Map::new();
    for (name, value) in pairs {
        let value = Value::String(value.into_owned());
        match object.get_mut(name.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => *existing = Value::Array(vec![existing.take(), value]),
            None => {
                object.insert(name.into_owned(), value);
            }
        }
    }
    Value::Object(object)
}

fn form_object(bytes: &[u8]) -> Value {
    pairs_object(form_urlencoded::parse(bytes))
}

fn query_object(query: &str) -> Value {
    pairs_object(form_urlencoded::parse(query.as_bytes()))
}
