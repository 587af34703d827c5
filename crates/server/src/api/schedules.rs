//! Schedules: their next fires and recent fires, and an operator's run, pause and
//! resume of one.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Serialize;
use switchboard_core::{ExecutionId, Timestamp};
use switchboard_engine::schedules::{RunError, ScheduleView};
use switchboard_store::Page;
use switchboard_store::schedule::{FireRecord, ScheduleFilter};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ListQuery, store_error};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// How many next fire times a schedule shows.
const NEXT_FIRES: usize = 5;

/// How many recent fires one schedule shows.
const RECENT_FIRES: usize = 20;

/// The schedule routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules))
        .routes(routes!(get_schedule))
        .routes(routes!(run_schedule))
        .routes(routes!(pause_schedule))
        .routes(routes!(resume_schedule))
}

/// A schedule: when it fires, and what it did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleSummary {
    /// The integration.
    pub integration: String,
    /// The flow it starts.
    pub flow: String,
    /// Its timing as written: `cron 0 2 * * * Europe/Berlin` or `every 15m`.
    pub timing: String,
    /// `none`, `latest` or `all`: what happens to fires missed while no process ran.
    pub catch_up: &'static str,
    /// `skip`, `queue` or `allow`: what happens to a fire while a run has not ended.
    pub overlap: &'static str,
    /// Whether it is paused.
    pub paused: bool,
    /// Its next fire times (none while paused).
    #[schema(value_type = Vec<String>)]
    pub next_fires: Vec<Timestamp>,
    /// The scheduled time of its last fire.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_fire_at: Option<Timestamp>,
    /// The scheduled time of its last run that succeeded.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_success_at: Option<Timestamp>,
}

impl From<&ScheduleView> for ScheduleSummary {
    fn from(view: &ScheduleView) -> Self {
        let trigger = view.trigger();
        Self {
            integration: view.record.integration.clone(),
            flow: view.record.flow.clone(),
            timing: view.record.timing.clone(),
            catch_up: trigger.map_or("", |trigger| trigger.catch_up.as_str()),
            overlap: trigger.map_or("", |trigger| trigger.overlap.as_str()),
            paused: view.record.paused,
            next_fires: view.next_fires(NEXT_FIRES),
            last_fire_at: view.record.last_fire_at,
            last_success_at: view.record.last_success_at,
        }
    }
}

/// A schedule with its recent fires.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleDetail {
    /// The schedule.
    #[serde(flatten)]
    pub schedule: ScheduleSummary,
    /// Its last fires, the latest first (fires by hand are executions, not listed here).
    pub fires: Vec<FireView>,
}

/// One fire of a schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireView {
    /// When it was due; with the flow, its key: no fire happens twice.
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_at: Timestamp,
    /// When it was claimed.
    #[schema(value_type = String, format = DateTime)]
    pub fired_at: Timestamp,
    /// `fired` (on time), `caught_up` (after downtime) or `skipped` (a run had not ended).
    pub outcome: String,
    /// The execution it started, unless skipped.
    #[schema(value_type = Option<String>)]
    pub execution_id: Option<ExecutionId>,
}

impl From<FireRecord> for FireView {
    fn from(fire: FireRecord) -> Self {
        Self {
            scheduled_at: fire.scheduled_at,
            fired_at: fire.fired_at,
            outcome: fire.outcome,
            execution_id: fire.execution_id,
        }
    }
}

/// The execution a fire by hand queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleRun {
    /// The new execution.
    #[schema(value_type = String)]
    pub execution_id: ExecutionId,
}

/// Every schedule, by integration and flow, with its next fire times.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules",
    params(
        ("integration" = Option<String>, Query, description = "Only this integration's."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size; 50 when not given."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before."),
    ),
    responses(
        (status = 200, description = "One page of schedules.", body = Page<ScheduleSummary>),
        (status = 400, description = "A query parameter is unknown or invalid; `error.path` names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn list_schedules(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page<ScheduleSummary>>, ApiError> {
    let mut query = ListQuery::parse(query.as_deref(), &["integration"])?;
    let page = state
        .engine
        .store()
        .schedules(ScheduleFilter {
            integration: query.filters.remove("integration"),
            after: query.cursor,
            limit: query.limit,
        })
        .await
        .map_err(store_error)?;
    let project = state.engine.project();
    let items = page
        .items
        .into_iter()
        .filter_map(|record| {
            let flow = project.flow(&record.integration, &record.flow)?;
            let view = ScheduleView {
                record,
                flow: std::sync::Arc::clone(flow),
            };
            Some(ScheduleSummary::from(&view))
        })
        .collect();
    Ok(axum::Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// One schedule, with its recent fires.
#[utoipa::path(get, path = "/api/v1/schedules/{integration}/{flow}", tag = "schedules",
    params(
        ("integration" = String, Path, description = "The integration."),
        ("flow" = String, Path, description = "The flow the schedule starts."),
    ),
    responses(
        (status = 200, description = "The schedule.", body = ScheduleDetail),
        (status = 404, description = "No flow of that name is started by a schedule.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn get_schedule(
    State(state): State<AppState>,
    Path((integration, flow)): Path<(String, String)>,
) -> Result<axum::Json<ScheduleDetail>, ApiError> {
    let view = found(&state, &integration, &flow).await?;
    let fires = state
        .engine
        .store()
        .fires(&integration, &flow, RECENT_FIRES)
        .await
        .map_err(store_error)?;
    Ok(axum::Json(ScheduleDetail {
        schedule: ScheduleSummary::from(&view),
        fires: fires.into_iter().map(FireView::from).collect(),
    }))
}

/// Fires a schedule now. Its overlap policy holds: with `skip`, a run that has not
/// ended refuses the fire.
#[utoipa::path(post, path = "/api/v1/schedules/{integration}/{flow}/run", tag = "schedules",
    params(
        ("integration" = String, Path, description = "The integration."),
        ("flow" = String, Path, description = "The flow the schedule starts."),
    ),
    responses(
        (status = 202, description = "The execution is queued.", body = ScheduleRun),
        (status = 404, description = "No flow of that name is started by a schedule.", body = ErrorBody),
        (status = 409, description = "`overlap: skip` and a run has not ended; the message names it.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn run_schedule(
    State(state): State<AppState>,
    Path((integration, flow)): Path<(String, String)>,
) -> Result<(StatusCode, axum::Json<ScheduleRun>), ApiError> {
    match state.engine.run_schedule(&integration, &flow).await {
        Ok(execution_id) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(ScheduleRun { execution_id }),
        )),
        Err(RunError::NotFound(name)) => Err(ApiError::not_found(format!("no schedule `{name}`"))),
        Err(error @ RunError::Running(_)) => Err(ApiError::conflict(error.to_string())),
        Err(RunError::Store(error)) => Err(store_error(error)),
    }
}

/// Pauses a schedule: it does not fire until resumed (across restarts too).
#[utoipa::path(post, path = "/api/v1/schedules/{integration}/{flow}/pause", tag = "schedules",
    params(
        ("integration" = String, Path, description = "The integration."),
        ("flow" = String, Path, description = "The flow the schedule starts."),
    ),
    responses(
        (status = 200, description = "Paused.", body = ScheduleSummary),
        (status = 404, description = "No flow of that name is started by a schedule.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn pause_schedule(
    State(state): State<AppState>,
    Path((integration, flow)): Path<(String, String)>,
) -> Result<axum::Json<ScheduleSummary>, ApiError> {
    set_paused(&state, &integration, &flow, true).await
}

/// Resumes a paused schedule from now: fires it missed while paused are not caught up.
#[utoipa::path(post, path = "/api/v1/schedules/{integration}/{flow}/resume", tag = "schedules",
    params(
        ("integration" = String, Path, description = "The integration."),
        ("flow" = String, Path, description = "The flow the schedule starts."),
    ),
    responses(
        (status = 200, description = "Running again.", body = ScheduleSummary),
        (status = 404, description = "No flow of that name is started by a schedule.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn resume_schedule(
    State(state): State<AppState>,
    Path((integration, flow)): Path<(String, String)>,
) -> Result<axum::Json<ScheduleSummary>, ApiError> {
    set_paused(&state, &integration, &flow, false).await
}

async fn set_paused(
    state: &AppState,
    integration: &str,
    flow: &str,
    paused: bool,
) -> Result<axum::Json<ScheduleSummary>, ApiError> {
    let view = state
        .engine
        .pause_schedule(integration, flow, paused)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(integration, flow))?;
    Ok(axum::Json(ScheduleSummary::from(&view)))
}

async fn found(state: &AppState, integration: &str, flow: &str) -> Result<ScheduleView, ApiError> {
    state
        .engine
        .schedule(integration, flow)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(integration, flow))
}

fn not_found(integration: &str, flow: &str) -> ApiError {
    ApiError::not_found(format!("no schedule `{integration}/{flow}`"))
}
