//! Bulk jobs: `POST /api/v1/executions/retry` and `/replay` with a filter start a job in
//! the background; `GET /api/v1/jobs/{id}` reads its progress.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchboard_core::Timestamp;
use switchboard_core::ids::JobId;
use switchboard_engine::{BulkAction, BulkJob};
use switchboard_store::{ExecutionFilter, ExecutionStatus};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The bulk routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(retry_matching))
        .routes(routes!(replay_matching))
        .routes(routes!(get_job))
}

/// Which executions a bulk job takes; every field narrows the match.
///
/// The body is read by hand (`filter_from`) so that each problem names its field; the
/// derives describe it to the document, which refuses unknown fields as the code does.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BulkFilter {
    /// Only this integration's.
    integration: Option<String>,
    /// Only this flow's.
    flow: Option<String>,
    /// Only executions in this state (a retry takes only `failed` ones anyway).
    status: Option<ExecutionStatus>,
    /// Only those accepted at or after this time (RFC 3339).
    #[schema(format = DateTime)]
    since: Option<String>,
    /// Only those accepted before this time (RFC 3339).
    #[schema(format = DateTime)]
    until: Option<String>,
    /// Only those whose error has this code (`http_status`, `execution_timeout`, …).
    error_code: Option<String>,
}

/// A bulk job and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// Its id.
    #[schema(value_type = String, example = "job_01JD3Q1Y0R8Z3T6V9W2X5A7B4C")]
    pub id: JobId,
    /// `retry` or `replay`.
    #[schema(value_type = String)]
    pub action: BulkAction,
    /// `listing`, `running` or `done`.
    pub state: &'static str,
    /// How many executions matched, once listed.
    pub total: Option<u64>,
    /// How many were handled so far.
    pub processed: u64,
    /// How many were retried or replayed.
    pub applied: u64,
    /// How many a retry left alone, because they had not failed.
    pub skipped: u64,
    /// How many could not be handled.
    pub failed: u64,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// When it ended.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

impl From<BulkJob> for JobView {
    fn from(job: BulkJob) -> Self {
        Self {
            id: job.id,
            action: job.action,
            state: job.state,
            total: job.total,
            processed: job.processed,
            applied: job.applied,
            skipped: job.skipped,
            failed: job.failed,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

/// The fields of a bulk request body.
const FIELDS: [&str; 6] = [
    "integration",
    "flow",
    "status",
    "since",
    "until",
    "error_code",
];

/// The filter of a bulk request body, each problem named by its field path.
fn filter_from(body: &Bytes) -> Result<ExecutionFilter, ApiError> {
    let value: Value = if body.is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|error| {
            ApiError::invalid_json(format!("the body is not valid JSON: {error}"))
        })?
    };
    let fields = match value {
        Value::Object(fields) => fields,
        Value::Null => Map::new(),
        _ => return Err(ApiError::invalid_body("the body must be a JSON object")),
    };
    let mut filter = ExecutionFilter::default();
    for (name, value) in fields {
        let path = format!("body.{name}");
        // `null` is the same as leaving the field out.
        if value.is_null()
            && matches!(
                name.as_str(),
                "integration" | "flow" | "status" | "since" | "until" | "error_code"
            )
        {
            continue;
        }
        let text = |value: Value| match value {
            Value::String(text) => Ok(text),
            _ => Err(ApiError::invalid_body(format!("`{name}` must be a string")).at(path.clone())),
        };
        let time = |value: Value| {
            let text = text(value)?;
            Timestamp::parse_rfc3339(&text).ok_or_else(|| {
                ApiError::invalid_body(format!("`{text}` is not an RFC 3339 time")).at(path.clone())
            })
        };
        match name.as_str() {
            "integration" => filter.integration = Some(text(value)?),
            "flow" => filter.flow = Some(text(value)?),
            "error_code" => filter.error_code = Some(text(value)?),
            "since" => filter.since = Some(time(value)?),
            "until" => filter.until = Some(time(value)?),
            "status" => {
                let status = text(value)?;
                filter.status = Some(ExecutionStatus::parse(&status).ok_or_else(|| {
                    ApiError::invalid_body(format!("`{status}` is not an execution status"))
                        .at(path.clone())
                })?);
            }
            _ => {
                return Err(ApiError::invalid_body(format!(
                    "unknown field `{name}`; use {}",
                    FIELDS.join(", ")
                ))
                .at(path));
            }
        }
    }
    Ok(filter)
}

fn start(
    state: &AppState,
    action: BulkAction,
    body: &Bytes,
) -> Result<(StatusCode, axum::Json<JobView>), ApiError> {
    let filter = filter_from(body)?;
    let job = state.engine.start_bulk(action, filter);
    Ok((StatusCode::ACCEPTED, axum::Json(job.into())))
}

/// Retries every failed execution the filter matches, from its failed step.
#[utoipa::path(post, path = "/api/v1/executions/retry", tag = "executions",
    request_body(content = Option<BulkFilter>, description = "Which executions; no body, `null` or an empty object takes all."),
    responses(
        (status = 202, description = "The job started; read its progress at `/api/v1/jobs/{id}`.", body = JobView),
        (status = 400, description = "The body is not a valid filter; `error.path` names the field.", body = ErrorBody),
    ))]
async fn retry_matching(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<JobView>), ApiError> {
    start(&state, BulkAction::Retry, &body)
}

/// Replays every execution the filter matches as a new execution.
#[utoipa::path(post, path = "/api/v1/executions/replay", tag = "executions",
    request_body(content = Option<BulkFilter>, description = "Which executions; no body, `null` or an empty object takes all."),
    responses(
        (status = 202, description = "The job started; read its progress at `/api/v1/jobs/{id}`.", body = JobView),
        (status = 400, description = "The body is not a valid filter; `error.path` names the field.", body = ErrorBody),
    ))]
async fn replay_matching(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<JobView>), ApiError> {
    start(&state, BulkAction::Replay, &body)
}

/// The progress of a bulk job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "executions",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job.", body = JobView),
        (status = 404, description = "No job has that id.", body = ErrorBody),
        (status = 503, description = "The store does not answer.", body = ErrorBody),
    ))]
async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<JobView>, ApiError> {
    let not_found = || ApiError::not_found(format!("no job `{id}`"));
    let parsed: JobId = id.parse().map_err(|_| not_found())?;
    state
        .engine
        .bulk_job(&parsed)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?
        .map(|job| axum::Json(job.into()))
        .ok_or_else(not_found)
}
