//! The management API under `/api/v1`, and the health routes.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use switchboard_core::ExecutionId;
use switchboard_project::{Integration, Trigger};
use switchboard_store::{ExecutionFilter, ExecutionStatus};

use crate::AppState;
use crate::error::ApiError;

/// The default and the largest page size.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// The API and health routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(ready))
        .route("/api/v1/integrations", get(list_integrations))
        .route("/api/v1/integrations/{name}", get(get_integration))
        .route("/api/v1/executions", get(list_executions))
        .route("/api/v1/executions/{id}", get(get_execution))
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.engine.store().ping().await {
        Ok(()) => axum::Json(
            json!({"status": "ready", "integrations": state.engine.project().integrations.len()}),
        )
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "Not ready: the store does not answer.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "unavailable", "reason": "the store does not answer"})),
            )
                .into_response()
        }
    }
}

/// The base URL hooks are reachable at: the configured one, or the request's `Host`.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(public) = &state.public_url {
        return public.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn integration_json(integration: &Integration, base: &str, with_config: bool) -> Value {
    let flows: Vec<Value> = integration
        .flows
        .values()
        .map(|flow| {
            let trigger = match &flow.trigger {
                Trigger::Webhook(webhook) => {
                    let path = format!("/hooks/{}/{}", integration.name, flow.name);
                    json!({
                        "kind": "webhook",
                        "methods": webhook.methods,
                        "accept": webhook.accept.as_str(),
                        "hook_path": path,
                        "hook_url": format!("{base}{path}"),
                    })
                }
            };
            json!({
                "name": flow.name,
                "description": flow.description,
                "trigger": trigger,
                "steps": flow.steps.iter().map(|step| json!({"id": step.id, "kind": step.kind.name()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut body = json!({
        "name": integration.name,
        "description": integration.description,
        "file": integration.file.display().to_string(),
        "flows": flows,
    });
    if with_config {
        body["config"] = integration
            .config
            .iter()
            .map(
                |var| json!({"name": var.name, "value": var.value, "description": var.description}),
            )
            .collect();
    }
    body
}

async fn list_integrations(State(state): State<AppState>, headers: HeaderMap) -> axum::Json<Value> {
    let base = base_url(&state, &headers);
    let items: Vec<Value> = state
        .engine
        .project()
        .integrations
        .values()
        .map(|integration| integration_json(integration, &base, false))
        .collect();
    axum::Json(json!({"items": items, "next_cursor": null}))
}

async fn get_integration(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let integration = state
        .engine
        .project()
        .integrations
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no integration `{name}`")))?;
    Ok(axum::Json(integration_json(
        integration,
        &base_url(&state, &headers),
        true,
    )))
}

/// The query of `GET /api/v1/executions`, checked parameter by parameter.
struct ExecutionQuery {
    filter: ExecutionFilter,
    limit: usize,
    cursor: Option<ExecutionId>,
}

impl ExecutionQuery {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let mut parsed = Self {
            filter: ExecutionFilter::default(),
            limit: DEFAULT_LIMIT,
            cursor: None,
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match name.as_ref() {
                "integration" => parsed.filter.integration = Some(value),
                "flow" => parsed.filter.flow = Some(value),
                "status" => {
                    let status = ExecutionStatus::parse(&value).ok_or_else(|| {
                        let known: Vec<&str> = ExecutionStatus::ALL
                            .iter()
                            .map(|status| status.as_str())
                            .collect();
                        ApiError::invalid_query(
                            "status",
                            format!("`{value}` is not a status; use one of {}", known.join(", ")),
                        )
                    })?;
                    parsed.filter.status = Some(status);
                }
                "limit" => {
                    parsed.limit = value
                        .parse()
                        .ok()
                        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                        .ok_or_else(|| {
                            ApiError::invalid_query(
                                "limit",
                                format!("`{value}` is not a whole number from 1 to {MAX_LIMIT}"),
                            )
                        })?;
                }
                "cursor" => {
                    let cursor = value.parse().map_err(|_| {
                        ApiError::invalid_query(
                            "cursor",
                            format!("`{value}` is not a cursor from this list"),
                        )
                    })?;
                    parsed.cursor = Some(cursor);
                }
                other => {
                    return Err(ApiError::invalid_query(
                        other,
                        format!(
                            "unknown parameter `{other}`; use integration, flow, status, limit or cursor"
                        ),
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

async fn list_executions(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = ExecutionQuery::parse(query.as_deref().unwrap_or(""))?;
    let page = state
        .engine
        .store()
        .executions(query.filter, query.limit, query.cursor)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?;
    Ok(axum::Json(page).into_response())
}

async fn get_execution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no execution `{id}`"));
    let parsed: ExecutionId = id.parse().map_err(|_| not_found())?;
    let execution = state
        .engine
        .store()
        .execution(&parsed)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?;
    execution
        .map(|execution| axum::Json(execution).into_response())
        .ok_or_else(not_found)
}
