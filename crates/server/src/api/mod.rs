//! The management API under `/api/v1`, and the health routes. Every handler carries its
//! OpenAPI description (`#[utoipa::path]`); [`crate::openapi`] gathers them.
//!
//! - `integrations`: the running project.
//! - `executions`: listing and reading executions, and an operator's retry, replay and
//!   cancel of one.
//! - `alerts`: alert rules and their state.
//! - `webhooks`: outbound endpoints, messages, attempts, resends and recovers.
//! - `events`: the built-in event bus: publishing, topics, subscribers and rewinds.
//! - `schedules`: schedules, their next and recent fires, and run, pause and resume.

mod alerts;
mod cluster;
mod events;
mod executions;
mod integrations;
mod schedules;
mod webhooks;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchboard_core::Timestamp;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

pub use alerts::AlertView;
pub use executions::Replayed;
pub use integrations::{ConfigView, FlowView, IntegrationView, StepView, TriggerView};

/// The page size of a list when the query gives none.
const DEFAULT_LIMIT: usize = 50;

/// The largest page size a list takes.
const MAX_LIMIT: usize = 500;

/// A list's `limit` parameter: a whole number from 1 to [`MAX_LIMIT`].
fn page_limit(value: &str) -> Result<usize, crate::error::ApiError> {
    value
        .parse()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
        .ok_or_else(|| {
            crate::error::ApiError::invalid_query(
                "limit",
                format!("`{value}` is not a whole number from 1 to {MAX_LIMIT}"),
            )
        })
}

/// Reads a JSON object body into `T`, naming the field at fault (`body.event_types[1]`).
/// `known`, when given, lists the fields allowed; any other is refused by name.
pub(crate) fn json_body<T: DeserializeOwned>(
    body: &Bytes,
    known: Option<&[&str]>,
) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid_json(format!("the body is not valid JSON: {error}")))?;
    let Value::Object(fields) = &value else {
        return Err(
            ApiError::unprocessable("invalid_field", "the body must be a JSON object").at("body"),
        );
    };
    if let Some(known) = known
        && let Some(unknown) = fields.keys().find(|field| !known.contains(&field.as_str()))
    {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!(
                "unknown field `{unknown}`; the fields are {}",
                known.join(", ")
            ),
        )
        .at(format!("body.{unknown}")));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let at = if path == "." {
            String::from("body")
        } else {
            format!("body.{path}")
        };
        ApiError::unprocessable("invalid_field", error.into_inner().to_string()).at(at)
    })
}

/// A store failure, as the API answers it.
pub(crate) fn store_error(error: switchboard_store::StoreError) -> ApiError {
    ApiError::store_unavailable(&error)
}

/// An RFC 3339 time of a body field at `path`.
pub(crate) fn timestamp(text: &str, path: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(text).ok_or_else(|| {
        ApiError::unprocessable("invalid_field", format!("`{text}` is not an RFC 3339 time"))
            .at(path)
    })
}

/// A list query: `limit`, `cursor` and the named filters, each checked.
pub(crate) struct ListQuery {
    /// The page size.
    pub(crate) limit: usize,
    /// Where the page starts, as given.
    pub(crate) cursor: Option<String>,
    /// The filters given, by name.
    pub(crate) filters: HashMap<&'static str, String>,
}

impl ListQuery {
    /// Parses a query, refusing any parameter but `limit`, `cursor` and `filters`.
    pub(crate) fn parse(query: Option<&str>, filters: &[&'static str]) -> Result<Self, ApiError> {
        let mut parsed = Self {
            limit: DEFAULT_LIMIT,
            cursor: None,
            filters: HashMap::new(),
        };
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = value.into_owned();
            match name.as_ref() {
                "limit" => {
                    parsed.limit = page_limit(&value)?;
                }
                "cursor" => parsed.cursor = Some(value),
                other => match filters.iter().find(|filter| **filter == other) {
                    Some(filter) => {
                        parsed.filters.insert(filter, value);
                    }
                    None => {
                        let mut known = filters.to_vec();
                        known.extend(["limit", "cursor"]);
                        return Err(ApiError::invalid_query(
                            other,
                            format!("unknown parameter `{other}`; use {}", known.join(", ")),
                        ));
                    }
                },
            }
        }
        Ok(parsed)
    }

    /// The cursor as a number (attempt and message lists page by sequence).
    pub(crate) fn numeric_cursor(&self) -> Result<Option<i64>, ApiError> {
        self.cursor
            .as_deref()
            .map(|cursor| {
                cursor.parse().map_err(|_| {
                    ApiError::invalid_query(
                        "cursor",
                        format!("`{cursor}` is not a cursor from this list"),
                    )
                })
            })
            .transpose()
    }
}

/// The API and health routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .merge(integrations::routes())
        .merge(executions::routes())
        .merge(alerts::routes())
        .merge(webhooks::routes())
        .merge(events::routes())
        .merge(schedules::routes())
        .merge(cluster::routes())
}

/// The answer of the health routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready`, or `unavailable`.
    pub status: &'static str,
    /// How many integrations are loaded (`/readyz` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrations: Option<usize>,
    /// Why the process is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive.", body = Health)))]
async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        integrations: None,
        reason: None,
    })
}

/// Readiness: the store answers, so webhooks can be accepted.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready to accept work.", body = Health),
    (status = 503, description = "The store does not answer.", body = Health),
))]
async fn ready(State(state): State<AppState>) -> Response {
    match state.engine.store().ping().await {
        Ok(()) => axum::Json(Health {
            status: "ready",
            integrations: Some(state.engine.project().integrations.len()),
            reason: None,
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "Not ready: the store does not answer.");
            let health = Health {
                status: "unavailable",
                integrations: None,
                reason: Some("the store does not answer"),
            };
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(health)).into_response()
        }
    }
}
