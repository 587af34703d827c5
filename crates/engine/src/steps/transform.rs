//! The `transform` step: the single result of a jq program.

use serde_json::json;
use switchboard_expr::Expr;

use super::{StepContext, StepError, StepOutcome};

pub(crate) fn run(program: &Expr, context: &StepContext<'_>) -> StepOutcome {
    let result = program
        .eval_one(context.scope, context.limits)
        .map_err(|source| StepError::Expression {
            what: "transform",
            source,
        });
    StepOutcome::new(json!({"filter": program.source()}), result)
}
