//! The `fail` step: ends the execution as failed, with the flow's own message and code.

use serde_json::{Value, json};
use switchboard_project::FailStep;

use super::{StepContext, StepError, StepOutcome};

pub(crate) fn run(step: &FailStep, context: &StepContext<'_>) -> StepOutcome {
    let input = json!({"message": step.message.source()});
    let text = |program: &switchboard_expr::Expr, what| {
        program
            .eval_one(context.scope, context.limits)
            .map(|value| match value {
                Value::String(text) => text,
                other => other.to_string(),
            })
            .map_err(|source| StepError::Expression { what, source })
    };
    let result = text(&step.message, "message").and_then(|message| {
        let code = match &step.code {
            Some(code) => text(code, "code")?,
            None => String::from("failed"),
        };
        Err(StepError::Failed { code, message })
    });
    StepOutcome::new(input, result)
}
