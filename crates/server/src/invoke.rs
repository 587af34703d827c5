//! Synchronous calls: `/invoke/{integration}/{flow}` for `invoke` flows, and webhook
//! flows with `mode: sync`.
//!
//! The request is taken like a webhook's (route, method, size, body, signature, keys,
//! durable before anything else); then the caller waits up to the flow's `wait` for its
//! answer: the first `respond` step's, else its output once it succeeds. Past the wait
//! the caller gets `202` with the execution id and a `Location` to poll; when it left a
//! callback URL (`Switchboard-Callback` header or `callback_url` query parameter) the
//! answer is also posted there, signed, when the execution ends. Waiting callers hold
//! no worker.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Serialize;
use serde_json::Value;
use switchboard_core::ExecutionId;
use switchboard_engine::invoke::Answer;
use switchboard_project::{Flow, SyncAnswer, Trigger};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The header naming the execution on every synchronous answer.
const EXECUTION_HEADER: &str = "switchboard-execution-id";

/// The header a caller leaves its callback URL in.
const CALLBACK_HEADER: &str = "switchboard-callback";

/// The invoke route, and the routes that poll a synchronous call's answer.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/invoke/{integration}/{flow}", any(invoke))
        .route("/invoke/{integration}/{flow}/{execution_id}", get(poll))
        .route("/hooks/{integration}/{flow}/{execution_id}", get(poll))
}

/// Runs an `invoke` flow and answers with its answer.
///
/// The caller waits up to the flow's `wait`. The answer is the flow's first `respond`
/// step's (its status, headers and body), else `200` with the flow's output, or `500`
/// when the flow failed. Past the wait: `202` with a `Location` to poll, and the answer
/// posted to the callback URL, if one was given, when the flow ends.
#[utoipa::path(post, path = "/invoke/{integration}/{flow}", tag = "hooks",
    params(
        ("integration" = String, Path, description = "The integration's name."),
        ("flow" = String, Path, description = "The invoke flow's name."),
        ("callback_url" = Option<String>, Query, description = "Where to post the answer if it is not ready within the flow's `wait` (or the `Switchboard-Callback` header)."),
    ),
    request_body(description = "Anything; the flow's `accept` says which formats it takes.", content(
        (serde_json::Value = "application/json"),
        (Object = "application/x-www-form-urlencoded"),
        (String = "text/plain"),
    )),
    responses(
        (status = 200, description = "The flow's answer: its `respond` step's, else its output."),
        (status = 202, description = "Not answered within the flow's `wait`: `Location` names where to poll, and the body is a `Pending`. (A flow may also answer 202 itself, without `Location`.)"),
        (status = 400, description = "The body does not parse, or the callback URL cannot be used.", body = ErrorBody),
        (status = 401, description = "The flow checks a signature and this request's is missing, stale or wrong.", body = ErrorBody),
        (status = 404, description = "No invoke flow has that name.", body = ErrorBody),
        (status = 405, description = "The flow does not take this method.", body = ErrorBody),
        (status = 413, description = "The body is over the size limit.", body = ErrorBody),
        (status = 415, description = "The flow does not take this content type.", body = ErrorBody),
        (status = 422, description = "One of the flow's keys could not be computed from the request.", body = ErrorBody),
        (status = 500, description = "The flow failed; the execution has the details.", body = ErrorBody),
        (status = 503, description = "The store does not answer; nothing was accepted.", body = ErrorBody),
        (status = "default", description = "The flow's answer, with the status its `respond` step chose."),
    ))]
pub(crate) async fn invoke(
    State(state): State<AppState>,
    Path((integration, flow_name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let flow = crate::hooks::request_flow(&state, &integration, &flow_name, "invoke")?;
    crate::hooks::intake(&state, &flow, method, uri, headers, body).await
}

/// A synchronous call's answer, once there is one.
///
/// The same answer the call would have given, or `202` while the execution runs.
#[utoipa::path(get, path = "/invoke/{integration}/{flow}/{execution_id}", tag = "hooks",
    params(
        ("integration" = String, Path, description = "The integration's name."),
        ("flow" = String, Path, description = "The flow's name."),
        ("execution_id" = String, Path, description = "The execution the `202` named."),
    ),
    responses(
        (status = 200, description = "The flow's answer: its `respond` step's, else its output."),
        (status = 202, description = "Not answered yet (the body is a `Pending`), or the flow's own 202."),
        (status = 404, description = "No such execution of a synchronous flow of that name.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
        (status = "default", description = "The flow's answer, with the status its `respond` step chose."),
    ))]
pub(crate) async fn poll(
    State(state): State<AppState>,
    Path((integration, flow_name, execution_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::not_found(format!(
            "no execution `{execution_id}` of a synchronous flow `{flow_name}` in integration `{integration}`"
        ))
    };
    let project = state.engine.project();
    let flow = project
        .flow(&integration, &flow_name)
        .filter(|flow| {
            flow.trigger
                .request()
                .is_some_and(|request| request.sync.is_some())
        })
        .ok_or_else(not_found)?;
    let id: ExecutionId = execution_id.parse().map_err(|_| not_found())?;
    let execution = state
        .engine
        .store()
        .execution(&id)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?
        .filter(|execution| {
            execution.summary.integration == flow.integration && execution.summary.flow == flow.name
        })
        .ok_or_else(not_found)?;
    let answer = state
        .engine
        .answer(&id)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?
        .flatten();
    Ok(match answer {
        Some(answer) => answered(&id, answer),
        None => pending(flow, &id, execution.summary.status.as_str(), false),
    })
}

/// The callback URL a request left, checked; an error when the flow cannot call back.
pub(crate) fn callback_url(
    state: &AppState,
    sync: &SyncAnswer,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let from_header = headers
        .get(CALLBACK_HEADER)
        .map(|value| {
            value.to_str().map(str::to_owned).map_err(|_| {
                ApiError::invalid_callback("the Switchboard-Callback header is not text")
            })
        })
        .transpose()?;
    let from_query = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(name, _)| name == "callback_url")
        .map(|(_, value)| value.into_owned());
    let Some(url) = from_header.or(from_query) else {
        return Ok(None);
    };
    if sync.callback_secret.is_none() {
        return Err(ApiError::invalid_callback(
            "this flow does not call back: it has no `callback.secret` to sign with",
        ));
    }
    state
        .engine
        .check_callback_url(&url)
        .map_err(ApiError::invalid_callback)?;
    Ok(Some(url))
}

/// Waits for the answer of a call the store has taken; past the flow's `wait`, hands
/// the caller a `202` (and the callback URL to the store).
pub(crate) async fn answer(
    state: &AppState,
    flow: &Flow,
    sync: &SyncAnswer,
    id: ExecutionId,
    callback: Option<String>,
) -> Result<Response, ApiError> {
    let engine = &state.engine;
    let store_error = |error: switchboard_store::StoreError| ApiError::store_unavailable(&error);
    if let Some(answer) = engine
        .await_answer(&id, sync.wait)
        .await
        .map_err(store_error)?
    {
        return Ok(answered(&id, answer));
    }
    let mut calls_back = false;
    if let Some(url) = callback {
        calls_back = engine.hand_off(&id, &url).await.map_err(store_error)?;
        if !calls_back {
            // It ended between the wait and the hand-off: answer now instead.
            if let Some(Some(answer)) = engine.answer(&id).await.map_err(store_error)? {
                return Ok(answered(&id, answer));
            }
        }
    }
    Ok(pending(flow, &id, "running", calls_back))
}

/// The answer of a call that has not answered yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pending {
    /// The execution running the call.
    #[schema(value_type = String, example = "exe_01JD3Q1Y0R8Z3T6V9W2X5A7B4C")]
    pub execution_id: ExecutionId,
    /// Its state.
    pub status: String,
    /// Where to poll for the answer.
    pub location: String,
    /// Whether the answer will also be posted to the callback URL the request gave.
    pub callback: bool,
}

fn pending(flow: &Flow, id: &ExecutionId, status: &str, callback: bool) -> Response {
    let prefix = match flow.trigger {
        Trigger::Invoke(_) => "invoke",
        _ => "hooks",
    };
    let location = format!("/{prefix}/{}/{}/{id}", flow.integration, flow.name);
    let body = Pending {
        execution_id: id.clone(),
        status: status.to_owned(),
        location: location.clone(),
        callback,
    };
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        headers.insert(EXECUTION_HEADER, value);
    }
    response
}

/// A flow's answer as an HTTP answer: a string body as text, `null` as none, anything
/// else as JSON, unless the flow named its own `content-type`.
fn answered(id: &ExecutionId, answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let (content_type, body) = match answer.body {
        Value::Null => (None, Body::empty()),
        Value::String(text) => (Some("text/plain; charset=utf-8"), Body::from(text)),
        other => (Some("application/json"), Body::from(other.to_string())),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        headers.insert(EXECUTION_HEADER, value);
    }
    response
}
