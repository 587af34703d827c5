//! The management API under `/api/v1`, and the health routes. Every handler carries its
//! OpenAPI description (`#[utoipa::path]`); [`crate::openapi`] gathers them.
//!
//! - `integrations`: the running project.
//! - `executions`: listing and reading executions, and an operator's retry, replay and
//!   cancel of one.
//! - `alerts`: alert rules and their state.
//! - `webhooks`: outbound endpoints, messages, attempts, resends and recovers.

mod alerts;
mod executions;
mod integrations;
mod webhooks;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

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

/// The API and health routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .merge(integrations::routes())
        .merge(executions::routes())
        .merge(alerts::routes())
        .merge(webhooks::routes())
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
