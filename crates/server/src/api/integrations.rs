//! The running project: its integrations, their flows and config.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use serde::Serialize;
use serde_json::Value;
use switchboard_project::{AfterFile, Integration, Step, StepKind, Trigger};
use switchboard_store::Page;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The integration routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations))
        .routes(routes!(get_integration))
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
        /// `async` (answers `202` at once) or `sync` (answers with the flow's answer).
        mode: &'static str,
        /// The jq program naming the flow each request goes to, for a dispatching hook.
        #[serde(skip_serializing_if = "Option::is_none")]
        dispatch: Option<String>,
    },
    /// A synchronous call to the flow's invoke URL.
    Invoke {
        /// The methods it takes.
        methods: Vec<String>,
        /// The body format it takes: `any`, `json`, `form` or `text`.
        accept: &'static str,
        /// How long a caller waits before getting `202`, in milliseconds.
        wait_ms: u64,
        /// Whether a caller may leave a callback URL.
        callback: bool,
        /// The path on this server.
        invoke_path: String,
        /// The full URL, from `--public-url` or the request's `Host`.
        invoke_url: String,
    },
    /// A `call` step or dispatch of another flow.
    Call,
    /// The integration's deployment, change or removal.
    Deploy {
        /// Which of `deployed`, `updated`, `removed` start it.
        on: Vec<&'static str>,
    },
    /// A cron pattern or interval; `/api/v1/schedules` has its next fires.
    Schedule {
        /// The timing as written: `cron 0 2 * * * Europe/Berlin` or `every 15m`.
        timing: String,
        /// `none`, `latest` or `all`.
        catch_up: &'static str,
        /// The bound of `catch_up: all`.
        max_catch_up: u32,
        /// `skip`, `queue` or `allow`.
        overlap: &'static str,
    },
    /// New files in a folder under the file roots.
    Files {
        /// The folder watched.
        path: String,
        /// The names taken.
        pattern: Option<String>,
        /// How often it is looked at, in milliseconds.
        every_ms: u64,
        /// Where a processed file goes; `null`: it is deleted.
        move_to: Option<String>,
        /// Where a file whose execution failed goes; `null`: it stays.
        failed_to: Option<String>,
    },
    /// An alert of the integration that names the flow in `notify`.
    Alert,
    /// A failed execution of a flow that names this one in `on_error`.
    Error,
    /// An event on the built-in bus.
    Event {
        /// The topic or pattern.
        topic: String,
        /// The filter's jq program, when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        filter: Option<String>,
    },
}

/// A step as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// Its id.
    pub id: String,
    /// Its kind: `transform`, `http`, `if`, `for_each`, ...
    pub kind: &'static str,
    /// The steps a block holds, by branch: `then` and `else` of an `if`, each case and
    /// `default` of a `switch`, each branch of a `parallel`, `steps` of a `for_each`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(no_recursion)]
    pub branches: BTreeMap<String, Vec<StepView>>,
}

impl StepView {
    fn new(step: &Step) -> Self {
        let views = |steps: &[Step]| steps.iter().map(StepView::new).collect::<Vec<_>>();
        let mut branches = BTreeMap::new();
        match &step.kind {
            StepKind::If(block) => {
                branches.insert(String::from("then"), views(&block.then));
                branches.insert(String::from("else"), views(&block.otherwise));
            }
            StepKind::Switch(block) => {
                for (case, steps) in &block.cases {
                    branches.insert(case.clone(), views(steps));
                }
                branches.insert(String::from("default"), views(&block.default));
            }
            StepKind::Parallel(parallel) => {
                for (name, steps) in parallel {
                    branches.insert(name.clone(), views(steps));
                }
            }
            StepKind::ForEach(block) => {
                branches.insert(String::from("steps"), views(&block.steps));
            }
            _ => {}
        }
        Self {
            id: step.id.clone(),
            kind: step.kind.name(),
            branches,
        }
    }
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
                            mode: if webhook.sync.is_some() {
                                "sync"
                            } else {
                                "async"
                            },
                            dispatch: webhook
                                .dispatch
                                .as_ref()
                                .map(|dispatch| dispatch.source().to_owned()),
                        }
                    }
                    Trigger::Invoke(invoke) => {
                        let invoke_path = format!("/invoke/{}/{}", integration.name, flow.name);
                        let sync = invoke.sync.as_ref();
                        TriggerView::Invoke {
                            methods: invoke.methods.clone(),
                            accept: invoke.accept.as_str(),
                            wait_ms: sync.map_or(0, |sync| {
                                u64::try_from(sync.wait.as_millis()).unwrap_or(u64::MAX)
                            }),
                            callback: sync.is_some_and(|sync| sync.callback_secret.is_some()),
                            invoke_url: format!("{base}{invoke_path}"),
                            invoke_path,
                        }
                    }
                    Trigger::Call => TriggerView::Call,
                    Trigger::Deploy(on) => TriggerView::Deploy {
                        on: on.iter().map(|event| event.as_str()).collect(),
                    },
                    Trigger::Schedule(schedule) => TriggerView::Schedule {
                        timing: schedule.timing.describe(),
                        catch_up: schedule.catch_up.as_str(),
                        max_catch_up: schedule.max_catch_up,
                        overlap: schedule.overlap.as_str(),
                    },
                    Trigger::Files(files) => TriggerView::Files {
                        path: files.path.clone(),
                        pattern: files.pattern.clone(),
                        every_ms: u64::try_from(files.every.as_millis()).unwrap_or(u64::MAX),
                        move_to: match &files.after {
                            AfterFile::Move(folder) => Some(folder.clone()),
                            AfterFile::Delete => None,
                        },
                        failed_to: files.failed_to.clone(),
                    },
                    Trigger::Alert => TriggerView::Alert,
                    Trigger::Error => TriggerView::Error,
                    Trigger::Event(event) => TriggerView::Event {
                        topic: event.topic.clone(),
                        filter: event
                            .filter
                            .as_ref()
                            .map(|filter| filter.source().to_owned()),
                    },
                };
                let steps = flow.steps.iter().map(StepView::new).collect();
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
    let project = state.engine.project();
    let integration = project
        .integrations
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no integration `{name}`")))?;
    Ok(axum::Json(IntegrationView::new(
        integration,
        &base_url(&state, &headers),
        true,
    )))
}
