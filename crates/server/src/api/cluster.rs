//! The nodes sharing this server's store.

use axum::extract::State;
use serde::Serialize;
use switchboard_core::Timestamp;
use switchboard_engine::HEARTBEAT;
use switchboard_store::NodeRecord;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// How many heartbeats a node may miss and still be listed.
const MISSED_HEARTBEATS: u32 = 3;

/// The cluster route.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cluster))
}

/// The live nodes, and which of them answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// The node that answered this request.
    pub node: String,
    /// Every node heard from within three heartbeats (30 s), by id.
    pub items: Vec<NodeRecord>,
    /// Always `null`: the list is one page.
    pub next_cursor: Option<String>,
}

/// The nodes running on this store: one with SQLite, every live one with PostgreSQL.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster", responses(
    (status = 200, description = "The live nodes, with their workers, leases held and last heartbeat.", body = ClusterView),
    (status = 503, description = "The store does not answer.", body = ErrorBody),
))]
async fn cluster(State(state): State<AppState>) -> Result<axum::Json<ClusterView>, ApiError> {
    let since = Timestamp(
        Timestamp::now().millis()
            - i64::try_from((HEARTBEAT * MISSED_HEARTBEATS).as_millis()).unwrap_or(i64::MAX),
    );
    let items = state
        .engine
        .store()
        .nodes(since)
        .await
        .map_err(|error| ApiError::store_unavailable(&error))?;
    Ok(axum::Json(ClusterView {
        node: state.engine.node().as_str().to_owned(),
        items,
        next_cursor: None,
    }))
}
