//! The `publish` step: events onto the built-in bus, appended with the step's checkpoint,
//! together with its `state` change when it has one (a polling cursor moves exactly when
//! its events are out).

use serde_json::{Value, json};
use switchboard_core::ids::EventId;
use switchboard_core::{Timestamp, topic};
use switchboard_project::PublishStep;
use switchboard_store::bus::NewEvent;

use super::{StepContext, StepError, StepOutcome};

pub(crate) fn run(step: &PublishStep, context: &StepContext<'_>) -> StepOutcome {
    let input = json!({"topic": step.topic.source()});
    let state = step
        .state
        .as_ref()
        .map(|state| super::state::change(state, context))
        .transpose();
    match (events(step, context), state) {
        (Ok(events), Ok(state)) => {
            let mut output = json!({
                "topic": events.first().map(|event| event.topic.clone()),
                "ids": events.iter().map(|event| event.id.clone()).collect::<Vec<_>>(),
            });
            if let Some(change) = &state {
                output["state"] = json!({"key": change.key, "value": change.value});
            }
            let mut outcome = StepOutcome::new(input, Ok(output));
            outcome.events = events;
            outcome.state.extend(state);
            outcome
        }
        (Err(error), _) | (_, Err(error)) => StepOutcome::new(input, Err(error)),
    }
}

fn events(step: &PublishStep, context: &StepContext<'_>) -> Result<Vec<NewEvent>, StepError> {
    let expression = |what| move |source| StepError::Expression { what, source };
    let topic = step
        .topic
        .render(context.scope, context.limits)
        .map_err(expression("topic"))?;
    if !topic::is_valid(&topic, false) {
        return Err(StepError::Invalid(format!(
            "`{topic}` is not a topic: {}",
            topic::RULE
        )));
    }
    let data = match &step.data {
        Some(program) => program
            .eval_all(context.scope, context.limits)
            .map_err(expression("data"))?,
        None => vec![context.scope.last_output()],
    };
    let source = format!(
        "/integrations/{}/flows/{}",
        context.integration, context.flow
    );
    let time = Timestamp::now();
    data.into_iter()
        .map(|data| {
            let scope = context.scope.with_input(&data);
            let text = |program: &switchboard_expr::Expr, what| {
                let value = program
                    .eval_one(&scope, context.limits)
                    .map_err(expression(what))?;
                Ok::<_, StepError>(match value {
                    Value::Null => None,
                    Value::String(text) => Some(text),
                    other => Some(other.to_string()),
                })
            };
            let key = step
                .key
                .as_ref()
                .map(|key| text(key, "key"))
                .transpose()?
                .flatten();
            let id = match step
                .id
                .as_ref()
                .map(|id| text(id, "id"))
                .transpose()?
                .flatten()
            {
                Some(id) => id,
                None => EventId::generate().to_string(),
            };
            Ok(NewEvent {
                id,
                topic: topic.clone(),
                key,
                source: source.clone(),
                time,
                data,
            })
        })
        .collect()
}
