//! The management API under `/api/v1`, and the health routes. Every handler carries its
//! OpenAPI description (`#[utoipa::path]`); [`crate::openapi`] gathers them.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use switchboard_core::ExecutionId;
use switchboard_project::{Integration, Trigger};
use switchboard_store::{
    AlertState, Control, ExecutionDetail, ExecutionFilter, ExecutionStatus, ExecutionSummary, Page,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The default and the largest page size.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// The API and health routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(list_integrations))
        .routes(routes!(get_integration))
        .routes(routes!(list_executions))
        .routes(routes!(get_execution))
        .routes(routes!(retry_execution))
        .routes(routes!(replay_execution))
        .routes(routes!(cancel_execution))
        .routes(routes!(list_alerts))
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

/// An integration as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationView {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The file it was loaded from.
    pub file: String,
    /// Its flows, in name order.
    pub flows: Vec<FlowView>,
    /// Its config variables (on `GET /api/v1/integrations/{name}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Vec<ConfigView>>,
}

/// A flow as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowView {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// What starts it.
    pub trigger: TriggerView,
    /// Its steps, in order.
    pub steps: Vec<StepView>,
}

/// What starts a flow.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerView {
    /// An HTTP request to the flow's hook.
    Webhook {
        /// The methods the hook takes.
        methods: Vec<String>,
        /// The body format it takes: `any`, `json`, `form` or `text`.
        accept: &'static str,
        /// The hook's path on this server.
        hook_path: String,
        /// The hook's full URL, from `--public-url` or the request's `Host`.
        hook_url: String,
    },
    /// An alert of the integration that names the flow in `notify`.
    Alert,
    /// A failed execution of a flow that names this one in `on_error`.
    Error,
}

/// A step as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// Its id.
    pub id: String,
    /// Its kind: `transform`, `http` or `log`.
    pub kind: &'static str,
}

/// A config variable and its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigView {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Value,
    /// What it means.
    pub description: Option<String>,
}

impl IntegrationView {
    fn new(integration: &Integration, base: &str, with_config: bool) -> Self {
        let flows = integration
            .flows
            .values()
            .map(|flow| {
                let trigger = match &flow.trigger {
                    Trigger::Webhook(webhook) => {
                        let hook_path = format!("/hooks/{}/{}", integration.name, flow.name);
                        TriggerView::Webhook {
                            methods: webhook.methods.clone(),
                            accept: webhook.accept.as_str(),
                            hook_url: format!("{base}{hook_path}"),
                            hook_path,
                        }
                    }
                    Trigger::Alert => TriggerView::Alert,
                    Trigger::Error => TriggerView::Error,
                };
                let steps = flow
                    .steps
                    .iter()
                    .map(|step| StepView {
                        id: step.id.clone(),
                        kind: step.kind.name(),
                    })
                    .collect();
                FlowView {
                    name: flow.name.clone(),
                    description: flow.description.clone(),
                    trigger,
                    steps,
                }
            })
            .collect();
        let config = with_config.then(|| {
            integration
                .config
                .iter()
                .map(|var| ConfigView {
                    name: var.name.clone(),
                    value: var.value.clone(),
                    description: var.description.clone(),
                })
                .collect()
        });
        Self {
            name: integration.name.clone(),
            description: integration.description.clone(),
            file: integration.file.display().to_string(),
            flows,
            config,
        }
    }
}

/// Every integration of the running project, in name order.
#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", responses(
    (status = 200, description = "The integrations, on one page.", body = Page<IntegrationView>),
))]
async fn list_integrations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> axum::Json<Page<IntegrationView>> {
    let base = base_url(&state, &headers);
    let items = state
        .engine
        .project()
        .integrations
        .values()
        .map(|integration| IntegrationView::new(integration, &base, false))
        .collect();
    axum::Json(Page {
        items,
        next_cursor: None,
    })
}

/// One integration, with its config.
#[utoipa::path(get, path = "/api/v1/integrations/{name}", tag = "integrations",
    params(("name" = String, Path, description = "The integration's name.")),
    responses(
        (status = 200, description = "The integration.", body = IntegrationView),
        (status = 404, description = "No integration has that name.", body = ErrorBody),
    ))]
async fn get_integration(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<IntegrationView>, ApiError> {
    let integration = state
        .engine
        .project()
        .integrations
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no integration `{name}`")))?;
    Ok(axum::Json(IntegrationView::new(
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

/// Executions, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/executions", tag = "executions",
    params(
        ("integration" = Option<String>, Query, description = "Only this integration's."),
        ("flow" = Option<String>, Query, description = "Only this flow's."),
        ("status" = Option<ExecutionStatus>, Query, description = "Only executions in this state."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size; 50 when not given."),
        ("cursor" = Option<String>, Query, pattern = "^exe_[0-7][0-9A-HJKMNP-TV-Z]{25}$",
            description = "The `next_cursor` of the page before."),
    ),
    responses(
        (status = 200, description = "One page of executions.", body = Page<ExecutionSummary>),
        (status = 400, description = "A query parameter is unknown or invalid; `error.path` names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn list_executions(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page<ExecutionSummary>>, ApiError> {
    let query = ExecutionQuery::parse(query.as_deref().unwrap_or(""))?;
    let page = state
        .engine
        .store()
        .executions(query.filter, query.limit, query.cursor)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?;
    Ok(axum::Json(page))
}

/// One execution with its trigger, input, step records and log.
#[utoipa::path(get, path = "/api/v1/executions/{id}", tag = "executions",
    params(("id" = String, Path, pattern = "^exe_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The execution's id.")),
    responses(
        (status = 200, description = "The execution.", body = ExecutionDetail),
        (status = 404, description = "No execution has that id.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn get_execution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ExecutionDetail>, ApiError> {
    let not_found = || ApiError::not_found(format!("no execution `{id}`"));
    let parsed = path_id(&id)?;
    let execution = state
        .engine
        .store()
        .execution(&parsed)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?;
    execution.map(axum::Json).ok_or_else(not_found)
}

/// An execution id from a path: one that cannot name an execution is not found.
fn path_id(id: &str) -> Result<ExecutionId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("no execution `{id}`")))
}

/// The execution after an operator's action on it.
async fn summary_after(state: &AppState, id: &ExecutionId) -> Result<ExecutionSummary, ApiError> {
    state
        .engine
        .store()
        .execution(id)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?
        .map(|detail| detail.summary)
        .ok_or_else(|| ApiError::not_found(format!("no execution `{id}`")))
}

/// The answer to an operator's action that could not apply.
fn control_refused(id: &ExecutionId, control: Control, action: &str, allowed: &str) -> ApiError {
    match control {
        Control::WrongStatus(status) => ApiError::conflict(format!(
            "execution {id} is {}; only {allowed} can be {action}",
            status.as_str()
        )),
        _ => ApiError::not_found(format!("no execution `{id}`")),
    }
}

/// Resumes a failed execution at its failed step, keeping the outputs of the steps
/// before it; the step gets a fresh set of attempts.
#[utoipa::path(post, path = "/api/v1/executions/{id}/retry", tag = "executions",
    params(("id" = String, Path, pattern = "^exe_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The execution's id.")),
    responses(
        (status = 202, description = "Queued again.", body = ExecutionSummary),
        (status = 404, description = "No execution has that id.", body = ErrorBody),
        (status = 409, description = "The execution has not failed.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn retry_execution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<ExecutionSummary>), ApiError> {
    let id = path_id(&id)?;
    let control = state
        .engine
        .retry(&id)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?;
    if control != Control::Applied {
        return Err(control_refused(
            &id,
            control,
            "retried",
            "failed executions",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(summary_after(&state, &id).await?),
    ))
}

/// The answer to a replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// The new execution.
    #[schema(value_type = String)]
    pub execution_id: ExecutionId,
    /// The execution it replays.
    #[schema(value_type = String)]
    pub replay_of: ExecutionId,
}

/// Starts a new execution with the same trigger and input, linked to the original
/// (`replay_of`), whatever state the original is in.
#[utoipa::path(post, path = "/api/v1/executions/{id}/replay", tag = "executions",
    params(("id" = String, Path, pattern = "^exe_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The execution to replay.")),
    responses(
        (status = 202, description = "The new execution is queued.", body = Replayed),
        (status = 404, description = "No execution has that id.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn replay_execution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<Replayed>), ApiError> {
    let id = path_id(&id)?;
    let new = state
        .engine
        .replay(&id)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?
        .ok_or_else(|| ApiError::not_found(format!("no execution `{id}`")))?;
    let replayed = Replayed {
        execution_id: new,
        replay_of: id,
    };
    Ok((StatusCode::ACCEPTED, axum::Json(replayed)))
}

/// Cancels an execution: a queued or retrying one at once (`200`); a running one stops
/// its running step and ends `cancelled` (`202`: it is on its way).
#[utoipa::path(post, path = "/api/v1/executions/{id}/cancel", tag = "executions",
    params(("id" = String, Path, pattern = "^exe_[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The execution's id.")),
    responses(
        (status = 200, description = "Cancelled.", body = ExecutionSummary),
        (status = 202, description = "Running: it stops at once here, or at its next checkpoint elsewhere.", body = ExecutionSummary),
        (status = 404, description = "No execution has that id.", body = ErrorBody),
        (status = 409, description = "The execution has already ended.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn cancel_execution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<ExecutionSummary>), ApiError> {
    let id = path_id(&id)?;
    let control = state
        .engine
        .cancel(&id)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?;
    let status = match control {
        Control::Applied => StatusCode::OK,
        Control::CancelRequested => StatusCode::ACCEPTED,
        refused => {
            return Err(control_refused(
                &id,
                refused,
                "cancelled",
                "queued, retrying or running executions",
            ));
        }
    };
    Ok((status, axum::Json(summary_after(&state, &id).await?)))
}

/// An alert rule and its state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// The integration it belongs to.
    pub integration: String,
    /// Its name.
    pub name: String,
    /// What it means.
    pub description: Option<String>,
    /// The flow it watches; `null`: every flow of the integration.
    pub flow: Option<String>,
    /// Its condition: `failures`, `error_rate`, `p95_duration` or `queue_age`.
    pub condition: &'static str,
    /// The flows each notification starts.
    pub notify: Vec<String>,
    /// The state last recorded; `null` before the alert first fired.
    pub state: Option<AlertState>,
}

/// Every alert rule of the project, with its state.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", responses(
    (status = 200, description = "The alerts, on one page.", body = Page<AlertView>),
    (status = 503, description = "The store does not answer.", body = ErrorBody),
))]
async fn list_alerts(
    State(state): State<AppState>,
) -> Result<axum::Json<Page<AlertView>>, ApiError> {
    let mut states = state
        .engine
        .store()
        .alert_states()
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?;
    let items = state
        .engine
        .project()
        .integrations
        .values()
        .flat_map(|integration| &integration.alerts)
        .map(|alert| {
            let recorded = states
                .iter()
                .position(|state| {
                    state.integration == alert.integration && state.alert == alert.name
                })
                .map(|index| states.swap_remove(index));
            AlertView {
                integration: alert.integration.clone(),
                name: alert.name.clone(),
                description: alert.description.clone(),
                flow: alert.flow.clone(),
                condition: alert.condition.kind(),
                notify: alert.notify.clone(),
                state: recorded,
            }
        })
        .collect();
    Ok(axum::Json(Page {
        items,
        next_cursor: None,
    }))
}
