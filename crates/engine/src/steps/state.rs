//! The `state` step: a small persisted key-value of the flow or the integration. Reads
//! come from the store; writes go with the step's checkpoint.

use serde_json::{Value, json};
use switchboard_project::{StateAction, StateScope, StateStep};
use switchboard_store::bus::StateChange;

use super::{StepContext, StepError, StepOutcome};

/// The namespace of a scope's state: `<integration>` or `<integration>/<flow>`.
pub(crate) fn namespace(scope: StateScope, integration: &str, flow: &str) -> String {
    match scope {
        StateScope::Flow => format!("{integration}/{flow}"),
        StateScope::Integration => integration.to_owned(),
    }
}

pub(crate) async fn run(step: &StateStep, context: &StepContext<'_>) -> StepOutcome {
    let key = match step.key.render(context.scope, context.limits) {
        Ok(key) => key,
        Err(source) => {
            let error = StepError::Expression {
                what: "key",
                source,
            };
            return StepOutcome::new(json!({"key": step.key.source()}), Err(error));
        }
    };
    let namespace = namespace(step.scope, context.integration, context.flow);
    let input = json!({"key": key, "namespace": namespace});
    let expression = |what| move |source| StepError::Expression { what, source };
    match &step.action {
        StateAction::Get(default) => {
            let result = match context.store.state(&namespace, &key).await {
                Ok(Some(value)) => Ok(value),
                Ok(None) => match default {
                    Some(default) => default
                        .eval_one(context.scope, context.limits)
                        .map_err(expression("default")),
                    None => Ok(Value::Null),
                },
                Err(error) => Err(StepError::Store(error.to_string())),
            };
            StepOutcome::new(input, result)
        }
        StateAction::Set(_) | StateAction::Delete => match new_value(step, context) {
            Ok(value) => {
                let output = value.clone().unwrap_or(Value::Null);
                let mut outcome = StepOutcome::new(input, Ok(output));
                outcome.state.push(StateChange {
                    namespace,
                    key,
                    value,
                });
                outcome
            }
            Err(error) => StepOutcome::new(input, Err(error)),
        },
    }
}

/// The change a `set` or `delete` makes, written with the checkpoint of the step it is
/// part of (a `state` step, or a `publish` with its events); `None` value: deleted.
pub(crate) fn change(
    step: &StateStep,
    context: &StepContext<'_>,
) -> Result<StateChange, StepError> {
    let key = step
        .key
        .render(context.scope, context.limits)
        .map_err(|source| StepError::Expression {
            what: "key",
            source,
        })?;
    Ok(StateChange {
        namespace: namespace(step.scope, context.integration, context.flow),
        key,
        value: new_value(step, context)?,
    })
}

/// What a `set` writes; `None` for a `delete` (and a `get`, which writes nothing).
fn new_value(step: &StateStep, context: &StepContext<'_>) -> Result<Option<Value>, StepError> {
    match &step.action {
        StateAction::Set(value) => value
            .eval_one(context.scope, context.limits)
            .map(Some)
            .map_err(|source| StepError::Expression {
                what: "value",
                source,
            }),
        StateAction::Get(_) | StateAction::Delete => Ok(None),
    }
}
