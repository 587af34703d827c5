//! Executions: listing and reading them, and an operator's retry, replay and cancel of one.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Serialize;
use switchboard_core::ExecutionId;
use switchboard_store::{
    Control, ExecutionDetail, ExecutionFilter, ExecutionStatus, ExecutionSummary, Page,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The execution routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_executions))
        .routes(routes!(get_execution))
        .routes(routes!(retry_execution))
        .routes(routes!(replay_execution))
        .routes(routes!(cancel_execution))
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
            limit: super::DEFAULT_LIMIT,
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
                    parsed.limit = super::page_limit(&value)?;
                }
                "parent_id" => {
                    let parent = value.parse().map_err(|_| {
                        ApiError::invalid_query(
                            "parent_id",
                            format!("`{value}` is not an execution id"),
                        )
                    })?;
                    parsed.filter.parent_id = Some(parent);
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
                            "unknown parameter `{other}`; use integration, flow, status, parent_id, limit or cursor"
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
        ("parent_id" = Option<String>, Query, pattern = "^exe_[0-7][0-9A-HJKMNP-TV-Z]{25}$",
            description = "Only the executions this one started (`call` steps, a dispatch)."),
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
