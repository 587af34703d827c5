//! The server's side of observability: `GET /metrics`, and a `request` span around every
//! request that the execution and step spans of its work nest under.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchboard_core::Timestamp;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// How often histogram samples are folded into their buckets.
pub(crate) const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `/metrics` route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// Every metric in the Prometheus text format (version 0.0.4); the queue gauges are read
/// from the store at each scrape, since the store is the truth about what waits.
#[utoipa::path(get, path = "/metrics", tag = "metrics", responses(
    (status = 200, description = "The metrics.", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
))]
async fn scrape(State(state): State<AppState>) -> Response {
    let metrics = state.engine.metrics();
    let now = Timestamp::now();
    match state.engine.store().queue(now).await {
        Ok(queued) => {
            let mut depths = BTreeMap::new();
            for integration in state.engine.project().integrations.values() {
                for flow in integration.flows.keys() {
                    depths.insert((integration.name.clone(), flow.clone()), (0, now));
                }
            }
            for flow in queued {
                depths.insert(
                    (flow.integration, flow.flow),
                    (flow.depth, flow.oldest_runnable_since),
                );
            }
            for ((integration, flow), (depth, since)) in depths {
                metrics.queue(&integration, &flow, depth, now.duration_since(since));
            }
        }
        Err(error) => tracing::warn!(%error, "Could not read the queue for /metrics."),
    }
    metrics.upkeep();
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], metrics.render()).into_response()
}

/// Runs a request inside a `request` span naming its method and route (never its full
/// path, which may carry ids), and records the status it ended with.
pub(crate) async fn trace_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        status = tracing::field::Empty,
        execution_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(took_ms, "Request failed.");
        } else {
            tracing::debug!(took_ms, "Request served.");
        }
    });
    response
}
