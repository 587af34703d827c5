//! The HTTP side of Switchboard, as a library: [`run`] serves one project on one
//! listener until a shutdown future completes. The binary and every test call it.
//!
//! - [`hooks`]: `/hooks/{integration}/{flow}`: checks the route, method and size, parses
//!   the body, and answers `202` with the execution id only once the execution is
//!   committed to the store.
//! - [`api`]: `/api/v1/...`, the management API, and `/healthz`, `/readyz`.
//! - [`jobs`]: bulk retry and replay, and their progress.
//! - [`error`]: the one table of stable error codes every route answers with.
//! - [`telemetry`]: `/metrics`, and the `request` span around every request.
//! - `openapi`: `/openapi.json`, generated from the handlers, and the `/docs` page.
//!
//! On shutdown the listener stops accepting, in-flight requests finish, and the engine
//! drains its running executions (see `switchboard_engine`).

pub mod api;
pub mod error;
pub mod hooks;
pub mod invoke;
pub mod jobs;
mod openapi;
pub mod telemetry;
mod verify;
pub mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use switchboard_core::{Secret, Secrets};
use switchboard_engine::{Engine, EngineConfig, EngineError};
use switchboard_project::Project;
use switchboard_store::{PostgresStore, SqliteStore, Store, StoreError};
use switchboard_telemetry::Metrics;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Everything [`run`] needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The data folder: the SQLite store (unless `store` names another), and the
    /// default root of `files` steps and triggers.
    pub data_dir: PathBuf,
    /// A PostgreSQL database to keep everything in instead of the data folder's SQLite
    /// (`postgres://…`), shared with every other node that names it.
    pub store: Option<Secret>,
    /// The loaded project.
    pub project: Arc<Project>,
    /// The secrets flows may read.
    pub secrets: Secrets,
    /// How the engine runs.
    pub engine: EngineConfig,
    /// The largest request body a hook takes, in bytes.
    pub max_body: usize,
    /// The base URL hooks are reachable at from outside, for the API's hook URLs.
    pub public_url: Option<String>,
    /// Set to reload the project when its files change (`serve --watch`).
    pub watch: Option<watch::Watch>,
}

/// The server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine could not be built.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Serving HTTP failed.
    #[error("the HTTP server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// What every route handler can reach.
#[derive(Clone)]
pub struct AppState {
    engine: Arc<Engine>,
    max_body: usize,
    public_url: Option<String>,
}

/// Serves `config` on `listener` until `shutdown` completes, then drains and returns.
pub async fn run(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let metrics = Arc::new(Metrics::new());
    let store = open_store(&config, &metrics).await?;
    let mut config = config;
    if config.engine.file_roots.is_empty() {
        config.engine.file_roots.push(config.data_dir.join("files"));
    }
    let engine = Engine::new(
        store,
        config.project,
        config.secrets,
        config.engine,
        Arc::clone(&metrics),
    )?;
    let base_url = match &config.public_url {
        Some(public) => public.trim_end_matches('/').to_owned(),
        None => format!("http://{}", listener.local_addr()?),
    };
    // Before the first request: every subscriber has its cursor, the store knows every
    // schedule, and what changed since the last run has queued its `deploy` flows.
    engine.sync_subscribers().await;
    engine.sync_schedules().await;
    engine.deploy(&base_url).await?;
    let stopping = CancellationToken::new();
    let engine_task = tokio::spawn(Arc::clone(&engine).run(stopping.clone()));
    if let Some(watch) = config.watch {
        tokio::spawn(watch::run(
            Arc::clone(&engine),
            watch,
            base_url,
            stopping.clone(),
        ));
    }
    tokio::spawn(upkeep(metrics, stopping.clone()));
    let state = AppState {
        engine,
        max_body: config.max_body,
        public_url: config.public_url,
    };
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown({
            let stopping = stopping.clone();
            async move {
                tokio::select! {
                    () = shutdown => tracing::info!("Shutting down: no new requests are accepted."),
                    () = stopping.cancelled() => {}
                }
                stopping.cancel();
            }
        })
        .await;
    stopping.cancel();
    if engine_task.await.is_err() {
        tracing::error!("The engine stopped abnormally.");
    }
    served.map_err(ServerError::from)
}

/// The store `config` names: PostgreSQL when it names one, else SQLite in the data folder.
async fn open_store(
    config: &ServerConfig,
    metrics: &Arc<Metrics>,
) -> Result<Arc<dyn Store>, StoreError> {
    let Some(url) = &config.store else {
        return Ok(Arc::new(SqliteStore::open(
            &config.data_dir,
            Arc::clone(metrics),
        )?));
    };
    let (url, metrics) = (url.clone(), Arc::clone(metrics));
    // Connecting and migrating block: off the async workers.
    let store = tokio::task::spawn_blocking(move || PostgresStore::connect(url.expose(), metrics))
        .await
        .map_err(|_| StoreError::Closed)??;
    Ok(Arc::new(store))
}

/// Every route of the server, and the OpenAPI document that describes them.
pub fn router(state: AppState) -> Router {
    let (routes, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(hooks::routes())
        .merge(invoke::routes())
        .merge(api::routes())
        .merge(jobs::routes())
        .merge(telemetry::routes())
        .split_for_parts();
    // Built on each request from the running project, so it follows `--watch` reloads.
    let engine = Arc::clone(&state.engine);
    let described = axum::routing::get(move || {
        let document = openapi::for_project(document.clone(), &engine.project());
        async move { axum::Json(document) }
    });
    routes
        .route("/openapi.json", described)
        .merge(openapi::reference())
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            error::ApiError::wrong_method(method.as_str())
        })
        .layer(axum::middleware::from_fn(telemetry::trace_request))
        .with_state(state)
}

/// Folds histogram samples into buckets now and then, so memory stays flat between scrapes.
async fn upkeep(metrics: Arc<Metrics>, stopping: CancellationToken) {
    let mut every = tokio::time::interval(telemetry::UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            _ = every.tick() => metrics.upkeep(),
        }
    }
}
