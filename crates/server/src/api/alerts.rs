//! Alert rules and their state.

use axum::extract::State;
use serde::Serialize;
use switchboard_store::{AlertState, Page};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The alert routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_alerts))
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
