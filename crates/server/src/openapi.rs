//! The described API: `GET /openapi.json`, an OpenAPI 3.1 document generated from the
//! handlers' `#[utoipa::path]` annotations and the request and response types, and
//! `GET /docs`, an API reference page whose assets are compiled into the binary.
//!
//! The hooks are described per project: the generic `/hooks/{integration}/{flow}`
//! operation becomes one operation per webhook flow and method, taking the body formats
//! that flow accepts, so a client (or a fuzzer) sees exactly what each hook takes. A
//! hook with `mode: sync` answers as `/invoke/{integration}/{flow}` does.

use switchboard_project::{BodyFormat, Project, Trigger};
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::{RefOr, Required};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ErrorBody, ErrorDetail};

/// The route every hook is served on.
const HOOK_PATH: &str = "/hooks/{integration}/{flow}";

/// The route every invoke is served on.
const INVOKE_PATH: &str = "/invoke/{integration}/{flow}";

/// The document's fixed parts; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "The management API of a Switchboard server, its webhook intake, health and metrics. \
            Every error answer is an `ErrorBody` whose `error.path` names the input that was wrong.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(crate::hooks::receive, crate::invoke::invoke, crate::invoke::poll),
    components(schemas(ErrorBody, ErrorDetail, crate::invoke::Pending)),
    tags(
        (name = "hooks", description = "Inbound webhooks and synchronous invokes that start flows."),
        (name = "executions", description = "What ran, step by step."),
        (name = "integrations", description = "The running project."),
        (name = "alerts", description = "Alert rules and whether they fire."),
        (name = "webhooks", description = "Outbound webhooks: endpoints, messages, deliveries and attempts."),
        (name = "events", description = "The built-in event bus: publishing, topics, subscribers and rewinds."),
        (name = "schedules", description = "Schedules: next fires, recent fires, run, pause and resume."),
        (name = "cluster", description = "The nodes sharing the store."),
        (name = "health", description = "Liveness and readiness."),
        (name = "metrics", description = "Prometheus metrics."),
    )
)]
pub(crate) struct ApiDoc;

/// The page at `/docs`, reading the document at `/openapi.json`.
pub(crate) fn reference() -> SwaggerUi {
    SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json"))
}

/// The document with the generic hook operation replaced by the project's hooks.
pub(crate) fn for_project(
    mut document: utoipa::openapi::OpenApi,
    project: &Project,
) -> utoipa::openapi::OpenApi {
    let Some(template) = document
        .paths
        .paths
        .remove(HOOK_PATH)
        .and_then(|item| item.post)
    else {
        return document;
    };
    // A hook with `mode: sync` answers as an invoke does.
    let sync_responses = document
        .paths
        .paths
        .get(INVOKE_PATH)
        .and_then(|item| item.post.as_ref())
        .map(|invoke| invoke.responses.clone());
    for integration in project.integrations.values() {
        for flow in integration.flows.values() {
            let Trigger::Webhook(webhook) = &flow.trigger else {
                continue;
            };
            let mut item = PathItem::default();
            for method in &webhook.methods {
                let mut operation = template.clone();
                operation.parameters = None;
                operation.operation_id = Some(format!(
                    "hook-{}-{}-{}",
                    integration.name,
                    flow.name,
                    method.to_ascii_lowercase()
                ));
                operation.summary = Some(format!(
                    "Starts flow `{}` of integration `{}`.",
                    flow.name, integration.name
                ));
                if let Some(description) = &flow.description {
                    operation.description = Some(description.clone());
                }
                if let (Some(_), Some(responses)) = (&webhook.sync, &sync_responses) {
                    operation.responses = responses.clone();
                }
                operation.request_body = match method.as_str() {
                    "GET" | "HEAD" | "DELETE" | "OPTIONS" => None,
                    _ => operation
                        .request_body
                        .map(|body| accepted_formats(body, webhook.accept)),
                };
                set_operation(&mut item, method, operation);
            }
            document
                .paths
                .paths
                .insert(format!("/hooks/{}/{}", integration.name, flow.name), item);
        }
    }
    document
}

/// The request body with only the content types `accept` takes; only JSON needs a body
/// (an empty one is `null`, an empty form or text).
fn accepted_formats(body: RefOr<RequestBody>, accept: BodyFormat) -> RefOr<RequestBody> {
    let RefOr::T(mut body) = body else {
        return body;
    };
    let keep = match accept {
        BodyFormat::Any => None,
        BodyFormat::Json => Some("application/json"),
        BodyFormat::Form => Some("application/x-www-form-urlencoded"),
        BodyFormat::Text => Some("text/plain"),
    };
    if let Some(keep) = keep {
        body.content.retain(|content_type, _| content_type == keep);
    }
    let required = matches!(accept, BodyFormat::Json);
    body.required = Some(if required {
        Required::True
    } else {
        Required::False
    });
    RefOr::T(body)
}

fn set_operation(item: &mut PathItem, method: &str, operation: Operation) {
    let slot = match method {
        "GET" => &mut item.get,
        "PUT" => &mut item.put,
        "DELETE" => &mut item.delete,
        "OPTIONS" => &mut item.options,
        "HEAD" => &mut item.head,
        "PATCH" => &mut item.patch,
        _ => &mut item.post,
    };
    *slot = Some(operation);
}
