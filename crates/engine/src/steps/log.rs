//! The `log` step: a message for the execution's log and the process log.

use serde_json::{Value, json};
use switchboard_expr::Template;
use switchboard_store::LogLevel;

use super::{StepContext, StepError, StepOutcome};

pub(crate) fn run(message: &Template, context: &StepContext<'_>) -> StepOutcome {
    match message.render(context.scope, context.limits) {
        Ok(text) => {
            let mut outcome = StepOutcome::new(
                json!({"message": message.source()}),
                Ok(Value::String(text.clone())),
            );
            outcome.logs.push((LogLevel::Info, text));
            outcome
        }
        Err(source) => StepOutcome::new(
            json!({"message": message.source()}),
            Err(StepError::Expression {
                what: "log",
                source,
            }),
        ),
    }
}
