//! The `http` step: one request, its answer as `{status, headers, body}`; with
//! `paginate`, a request per page until `next` gives null or `max_pages` is reached,
//! the answers as `{pages: [...], next}`.
//!
//! Every request carries `Idempotency-Key: <execution id>.<step id>` (the header is the
//! step's `idempotency_header`; `idempotency: false` leaves it out), the same on every
//! attempt, so a receiver that honours it applies the effect once even when the step
//! runs again after a crash between its answer and our checkpoint (page `n` after the
//! first carries `<execution id>.<step id>.<n>`). It also carries a W3C
//! `traceparent` in the execution's trace, unless the step sets one itself.

use std::time::Instant;

use serde_json::{Map, Value, json};
use switchboard_project::{HttpBody, HttpStep};
use switchboard_telemetry::{TraceContext, otel};

use super::{StepContext, StepError, StepOutcome};
use crate::error_chain;

pub(crate) async fn run(step: &HttpStep, context: &StepContext<'_>) -> StepOutcome {
    let request = match Request::build(step, context) {
        Ok(request) => request,
        Err(error) => {
            return StepOutcome::new(
                json!({"method": step.method, "url": step.url.source()}),
                Err(error),
            );
        }
    };
    let input = request.describe();
    let Some(paginate) = &step.paginate else {
        return match exchange(&request, step, context).await {
            Ok(response) => StepOutcome::new(input, Ok(response)),
            Err((error, response)) => failed(input, error, response),
        };
    };
    // Pages: each answer is kept; `next` over it gives the next request, or null.
    let mut pages = Vec::new();
    let mut request = request;
    loop {
        let response = match exchange(&request, step, context).await {
            Ok(response) => response,
            Err((error, response)) => return failed(input, error, response),
        };
        let next = match paginate
            .next
            .eval_one(&context.scope.with_input(&response), context.limits)
        {
            Ok(next) => next,
            Err(source) => {
                let error = StepError::Expression {
                    what: "paginate.next",
                    source,
                };
                return failed(input, error, None);
            }
        };
        pages.push(response);
        if next.is_null() || next == Value::Bool(false) {
            return StepOutcome::new(input, Ok(json!({"pages": pages, "next": null})));
        }
        if pages.len() >= paginate.max_pages as usize {
            // The request not sent, for a later run to go on from.
            return StepOutcome::new(input, Ok(json!({"pages": pages, "next": next})));
        }
        request = match request.follow(&next, pages.len(), step, context) {
            Ok(request) => request,
            Err(error) => return failed(input, error, None),
        };
    }
}

/// A failed step, with the answer that failed it when there was one.
fn failed(input: Value, error: StepError, response: Option<Value>) -> StepOutcome {
    let mut outcome = StepOutcome::new(input, Err(error));
    outcome.response = response;
    outcome
}

/// Sends `request`; an answer outside 2xx and the step's `accept` is an error that
/// carries it.
async fn exchange(
    request: &Request,
    step: &HttpStep,
    context: &StepContext<'_>,
) -> Result<Value, (StepError, Option<Value>)> {
    let response = send(request, step, context)
        .await
        .map_err(|error| (error, None))?;
    let status = response["status"]
        .as_u64()
        .and_then(|status| u16::try_from(status).ok())
        .unwrap_or(0);
    if (200..300).contains(&status) || step.accept.contains(&status) {
        return Ok(response);
    }
    let error = StepError::Status {
        method: request.method.to_string(),
        url: request.url.to_string(),
        status,
    };
    Err((error, Some(response)))
}

/// The request with every template and expression evaluated.
struct Request {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Request {
    fn build(step: &HttpStep, context: &StepContext<'_>) -> Result<Self, StepError> {
        let expression = |what| move |source| StepError::Expression { what, source };
        let method = reqwest::Method::from_bytes(step.method.as_bytes()).map_err(|_| {
            StepError::InvalidRequest(format!("`{}` is not an HTTP method", step.method))
        })?;
        let url_text = step
            .url
            .render(context.scope, context.limits)
            .map_err(expression("url"))?;
        let mut url = reqwest::Url::parse(&url_text).map_err(|error| {
            StepError::InvalidRequest(format!("`{url_text}` is not a URL: {error}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(StepError::InvalidRequest(format!(
                "`{url_text}` is not an http or https URL"
            )));
        }
        for (name, value) in &step.query {
            let value = value
                .render(context.scope, context.limits)
                .map_err(expression("query"))?;
            url.query_pairs_mut().append_pair(name, &value);
        }
        let mut headers = Vec::new();
        for (name, value) in &step.headers {
            headers.push((
                name.clone(),
                value
                    .render(context.scope, context.limits)
                    .map_err(expression("headers"))?,
            ));
        }
        if let Some(header) = &step.idempotency_header {
            headers.push((
                header.clone(),
                format!("{}.{}", context.execution, context.step),
            ));
        }
        let has_trace = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(TraceContext::HEADER));
        if !has_trace {
            // The step's exported span is the parent when spans are exported.
            let parent = otel::current().unwrap_or_else(|| context.trace.child());
            headers.push((TraceContext::HEADER.to_owned(), parent.to_string()));
        }
        let body = match &step.body {
            HttpBody::None => None,
            HttpBody::Json(program) => Some(
                program
                    .eval_one(context.scope, context.limits)
                    .map_err(expression("json"))?,
            ),
            HttpBody::Text(template) => Some(Value::String(
                template
                    .render(context.scope, context.limits)
                    .map_err(expression("body"))?,
            )),
        };
        Ok(Self {
            method,
            url,
            headers,
            body,
        })
    }

    /// The request for page `page` (counted from 0): this one changed by `next`, an
    /// object of `url` (absolute, or relative to this request's), `query` (parameters
    /// set, replacing those of the same name; `null` removes one), `headers` (set) and
    /// `json` (the body).
    fn follow(
        &self,
        next: &Value,
        page: usize,
        step: &HttpStep,
        context: &StepContext<'_>,
    ) -> Result<Self, StepError> {
        let invalid = |what: &str| {
            StepError::Invalid(format!(
                "`paginate.next` gave {what}; it gives null (no more pages) or an object of url, query, headers and json"
            ))
        };
        let Value::Object(changes) = next else {
            return Err(invalid(&format!("`{next}`")));
        };
        let mut request = Self {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
        };
        for (field, value) in changes {
            match (field.as_str(), value) {
                ("url", Value::String(url)) => {
                    request.url = self.url.join(url).map_err(|error| {
                        StepError::InvalidRequest(format!("`{url}` is not a URL: {error}"))
                    })?;
                    if !matches!(request.url.scheme(), "http" | "https") {
                        return Err(StepError::InvalidRequest(format!(
                            "`{url}` is not an http or https URL"
                        )));
                    }
                }
                ("query", Value::Object(parameters)) => {
                    let kept: Vec<(String, String)> = request
                        .url
                        .query_pairs()
                        .filter(|(name, _)| !parameters.contains_key(name.as_ref()))
                        .map(|(name, value)| (name.into_owned(), value.into_owned()))
                        .collect();
                    let mut pairs = request.url.query_pairs_mut();
                    pairs.clear();
                    for (name, value) in &kept {
                        pairs.append_pair(name, value);
                    }
                    for (name, value) in parameters {
                        match value {
                            Value::Null => {}
                            Value::String(text) => {
                                pairs.append_pair(name, text);
                            }
                            other => {
                                pairs.append_pair(name, &other.to_string());
                            }
                        }
                    }
                    drop(pairs);
                    if request.url.query() == Some("") {
                        request.url.set_query(None);
                    }
                }
                ("headers", Value::Object(headers)) => {
                    for (name, value) in headers {
                        let value = match value {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        request
                            .headers
                            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
                        request.headers.push((name.clone(), value));
                    }
                }
                ("json", body) => request.body = Some(body.clone()),
                (field @ ("url" | "query" | "headers"), other) => {
                    return Err(invalid(&format!("`{field}: {other}`")));
                }
                (other, _) => return Err(invalid(&format!("an unknown field `{other}`"))),
            }
        }
        if let Some(header) = &step.idempotency_header {
            let key = format!("{}.{}.{page}", context.execution, context.step);
            for (name, value) in &mut request.headers {
                if name == header {
                    value.clone_from(&key);
                }
            }
        }
        Ok(request)
    }

    /// The request as recorded on the step.
    fn describe(&self) -> Value {
        let headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        let mut described =
            json!({"method": self.method.as_str(), "url": self.url.as_str(), "headers": headers});
        if let Some(body) = &self.body {
            described["body"] = body.clone();
        }
        described
    }
}

async fn send(
    request: &Request,
    step: &HttpStep,
    context: &StepContext<'_>,
) -> Result<Value, StepError> {
    let mut builder = context
        .http
        .request(request.method.clone(), request.url.clone())
        .timeout(step.timeout);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder = match (&step.body, &request.body) {
        (HttpBody::Text(_), Some(Value::String(text))) => builder.body(text.clone()),
        (_, Some(body)) => {
            let has_type = request
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
            let builder = if has_type {
                builder
            } else {
                builder.header("content-type", "application/json")
            };
            builder.body(body.to_string())
        }
        _ => builder,
    };
    let request_built = builder
        .build()
        .map_err(|error| StepError::InvalidRequest(error.to_string()))?;
    let started = Instant::now();
    let report = |status| {
        context
            .metrics
            .outbound_http(context.integration, context.flow, status, started.elapsed());
    };
    let mut response = match context.http.execute(request_built).await {
        Ok(response) => response,
        Err(error) => {
            report(None);
            return Err(classify(&error, step));
        }
    };
    let status = response.status().as_u16();
    let headers = switchboard_core::headers::headers_object(response.headers());
    let is_json = headers
        .get("content-type")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.contains("json"));
    let body = read_body(&mut response, step, context.max_response_body).await;
    report(Some(status));
    let body = body?;
    let body = if is_json {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    } else if body.is_empty() {
        Value::Null
    } else {
        Value::String(String::from_utf8_lossy(&body).into_owned())
    };
    Ok(json!({"status": status, "headers": headers, "body": body}))
}

/// The whole body, or an error once it passes `limit` bytes.
async fn read_body(
    response: &mut reqwest::Response,
    step: &HttpStep,
    limit: usize,
) -> Result<Vec<u8>, StepError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| classify(&error, step))?
    {
        if body.len() + chunk.len() > limit {
            return Err(StepError::BodyTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify(error: &reqwest::Error, step: &HttpStep) -> StepError {
    if error.is_timeout() {
        StepError::Timeout(step.timeout)
    } else if error.is_connect() {
        StepError::Connect(error_chain(error))
    } else if error.is_builder() {
        StepError::InvalidRequest(error_chain(error))
    } else {
        StepError::Transport(error_chain(error))
    }
}
