//! The `respond` step: the answer a synchronous caller gets, `{status, headers, body}`.
//! The executor stores the first one with the step's checkpoint, which wakes the caller;
//! the flow goes on.

use serde_json::{Map, Value, json};
use switchboard_project::{RespondStep, ResponseStatus};

use super::{StepContext, StepError, StepOutcome};

pub(crate) fn run(step: &RespondStep, context: &StepContext<'_>) -> StepOutcome {
    let input = json!({
        "status": match &step.status {
            ResponseStatus::Code(code) => json!(code),
            ResponseStatus::Program(program) => json!(program.source()),
        },
        "headers": step.headers.iter().map(|(name, value)| (name.clone(), json!(value.source()))).collect::<Map<_, _>>(),
        "body": step.body.as_ref().map(|body| body.source()),
    });
    StepOutcome::new(input, answer(step, context))
}

fn answer(step: &RespondStep, context: &StepContext<'_>) -> Result<Value, StepError> {
    let status = match &step.status {
        ResponseStatus::Code(code) => *code,
        ResponseStatus::Program(program) => {
            let value = program
                .eval_one(context.scope, context.limits)
                .map_err(|source| StepError::Expression {
                    what: "status",
                    source,
                })?;
            value
                .as_u64()
                .and_then(|code| u16::try_from(code).ok())
                .filter(|code| (200..=599).contains(code))
                .ok_or_else(|| {
                    StepError::Invalid(format!(
                        "`status` gave {value}; an answer's status is a number from 200 to 599"
                    ))
                })?
        }
    };
    let mut headers = Map::new();
    for (name, template) in &step.headers {
        let value = template
            .render(context.scope, context.limits)
            .map_err(|source| StepError::Expression {
                what: "header",
                source,
            })?;
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || reqwest::header::HeaderValue::from_str(&value).is_err()
        {
            return Err(StepError::Invalid(format!(
                "the header `{name}: {value}` cannot be sent in an HTTP answer"
            )));
        }
        headers.insert(name.to_ascii_lowercase(), Value::String(value));
    }
    let body = match &step.body {
        Some(body) => body
            .eval_one(context.scope, context.limits)
            .map_err(|source| StepError::Expression {
                what: "body",
                source,
            })?,
        None => Value::Null,
    };
    Ok(json!({"status": status, "headers": headers, "body": body}))
}
