//! The steps the executor runs itself: blocks that hold steps (`if`, `switch`,
//! `parallel`, `for_each`) and `sleep`.
//!
//! A block's inner steps are recorded under their own ids, so a resumed execution finds
//! them done one by one. Inside a `for_each` each item's records carry a prefix
//! (`lines[3].price`), so a crash in item 900 of 1000 resumes at item 900. `if` and
//! `switch` record their decision before the chosen steps run, so a resumed execution
//! takes the same branch even if the condition would now say otherwise.

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::{StreamExt, future, stream};
use serde_json::{Map, Value, json};
use switchboard_core::Timestamp;
use switchboard_project::{Flow, ForEachStep, IfStep, Sleep, Step, SwitchStep};
use switchboard_store::StepStatus;

use super::{ExecutionRun, Frame, RunError};
use crate::steps::StepError;

impl ExecutionRun<'_> {
    /// The decision an `if` or `switch` recorded in an earlier lease, else the one made
    /// now (recorded and checkpointed before its steps run).
    async fn decide(
        &self,
        step: &Step,
        record_id: &str,
        frame: &mut Frame,
        input: Value,
        decide: impl FnOnce(&Frame) -> Result<Value, StepError>,
    ) -> Result<Value, RunError> {
        if let Some(done) = self.done.get(record_id) {
            frame.scope.set_step(&step.id, &done.output);
            return Ok(done.output.clone());
        }
        let started_at = Timestamp::now();
        let decision = match decide(frame) {
            Ok(decision) => decision,
            Err(error) => return Err(self.failed(step, record_id, input, &error, started_at)),
        };
        self.succeeded(step, record_id, input, &decision, started_at)
            .await?;
        frame.scope.set_step(&step.id, &decision);
        Ok(decision)
    }

    pub(super) async fn if_step(
        &self,
        flow: &Flow,
        step: &Step,
        record_id: &str,
        block: &IfStep,
        frame: &mut Frame,
    ) -> Result<Value, RunError> {
        let limits = &self.engine.config.expression_limits;
        let input = json!({"condition": block.condition.source()});
        let decision = self
            .decide(step, record_id, frame, input, |frame| {
                let value = block
                    .condition
                    .eval_one(&frame.scope, limits)
                    .map_err(|source| StepError::Expression {
                        what: "condition",
                        source,
                    })?;
                let branch = if matches!(value, Value::Null | Value::Bool(false)) {
                    "else"
                } else {
                    "then"
                };
                Ok(json!({"branch": branch}))
            })
            .await?;
        let steps = if decision["branch"] == "then" {
            &block.then
        } else {
            &block.otherwise
        };
        self.steps(flow, steps, frame).await
    }

    pub(super) async fn switch_step(
        &self,
        flow: &Flow,
        step: &Step,
        record_id: &str,
        block: &SwitchStep,
        frame: &mut Frame,
    ) -> Result<Value, RunError> {
        let limits = &self.engine.config.expression_limits;
        let input = json!({"value": block.value.source()});
        let decision = self
            .decide(step, record_id, frame, input, |frame| {
                let value = block
                    .value
                    .eval_one(&frame.scope, limits)
                    .map_err(|source| StepError::Expression {
                        what: "value",
                        source,
                    })?;
                let name = match &value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let case = block
                    .cases
                    .iter()
                    .any(|(case, _)| *case == name)
                    .then_some(name);
                Ok(json!({"case": case, "value": value}))
            })
            .await?;
        let steps = match decision["case"].as_str() {
            Some(case) => block
                .cases
                .iter()
                .find(|(name, _)| name == case)
                .map_or(block.default.as_slice(), |(_, steps)| steps.as_slice()),
            None => block.default.as_slice(),
        };
        self.steps(flow, steps, frame).await
    }

    /// Runs every branch side by side, each in its own copy of the scope; the steps
    /// after it read what each branch ran.
    pub(super) async fn parallel(
        &self,
        flow: &Flow,
        step: &Step,
        record_id: &str,
        branches: &[(String, Vec<Step>)],
        frame: &mut Frame,
    ) -> Result<Value, RunError> {
        let started_at = Timestamp::now();
        let mut frames: Vec<Frame> = branches.iter().map(|_| frame.clone()).collect();
        let results = future::join_all(
            branches
                .iter()
                .zip(frames.iter_mut())
                .map(|((_, steps), branch)| self.steps(flow, steps, branch)),
        )
        .await;
        let mut output = Map::new();
        let mut stopped: Option<RunError> = None;
        for (((name, _), result), branch) in branches.iter().zip(results).zip(&frames) {
            frame.scope.absorb(&branch.scope);
            match result {
                Ok(last) => {
                    output.insert(name.clone(), last);
                }
                Err(error) => stopped = Some(worse(stopped, error)),
            }
        }
        if let Some(error) = stopped {
            return Err(error);
        }
        let output = Value::Object(output);
        if !self.done.contains_key(record_id) {
            let names: Vec<&str> = branches.iter().map(|(name, _)| name.as_str()).collect();
            let input = json!({"branches": names});
            self.succeeded(step, record_id, input, &output, started_at)
                .await?;
        }
        frame.scope.set_step(&step.id, &output);
        Ok(output)
    }

    /// Runs the steps once per item, up to `concurrency` items at once; the output is
    /// each item's last output, in item order.
    pub(super) async fn for_each(
        &self,
        flow: &Flow,
        step: &Step,
        record_id: &str,
        block: &ForEachStep,
        frame: &mut Frame,
    ) -> Result<Value, RunError> {
        let started_at = Timestamp::now();
        let limits = &self.engine.config.expression_limits;
        let input = json!({"items": block.items.source()});
        let items = match block.items.eval_one(&frame.scope, limits) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let error =
                    StepError::Invalid(format!("`items` gave {}, not a list", json_type(&other)));
                return Err(self.failed(step, record_id, input, &error, started_at));
            }
            Err(source) => {
                let error = StepError::Expression {
                    what: "items",
                    source,
                };
                return Err(self.failed(step, record_id, input, &error, started_at));
            }
        };
        let count = items.len();
        // Once an item stops the execution, no further item starts.
        let stopping = AtomicBool::new(false);
        let parent: &Frame = frame;
        let results: Vec<Option<Result<Value, RunError>>> =
            stream::iter(items.into_iter().enumerate())
                .map(|(index, item)| {
                    let stopping = &stopping;
                    async move {
                        if stopping.load(Ordering::Relaxed) {
                            return None;
                        }
                        let mut scope = parent.scope.clone();
                        scope.set_item(&item, index);
                        let mut item_frame = Frame {
                            prefix: format!("{record_id}[{index}]."),
                            scope,
                        };
                        let result = self.steps(flow, &block.steps, &mut item_frame).await;
                        if result.is_err() {
                            stopping.store(true, Ordering::Relaxed);
                        }
                        Some(result)
                    }
                })
                .buffered(block.concurrency as usize)
                .collect()
                .await;
        let mut outputs = Vec::with_capacity(count);
        let mut stopped: Option<RunError> = None;
        for result in results.into_iter().flatten() {
            match result {
                Ok(last) => outputs.push(last),
                Err(error) => stopped = Some(worse(stopped, error)),
            }
        }
        if let Some(error) = stopped {
            return Err(error);
        }
        let output = Value::Array(outputs);
        let input = json!({"items": block.items.source(), "count": count});
        self.succeeded(step, record_id, input, &output, started_at)
            .await?;
        frame.scope.set_step(&step.id, &output);
        Ok(output)
    }

    /// Records the start of a `sleep` with the time it ends, so that a resumed
    /// execution waits for the same time.
    pub(super) fn start_sleep(
        &self,
        step: &Step,
        record_id: &str,
        sleep: &Sleep,
        frame: &Frame,
    ) -> Result<Timestamp, RunError> {
        let started_at = Timestamp::now();
        let (input, until) = match sleep {
            Sleep::For(duration) => (
                json!({"for": switchboard_core::HumanDuration(*duration).to_string()}),
                Ok(started_at.after(*duration)),
            ),
            Sleep::Until(program) => {
                let limits = &self.engine.config.expression_limits;
                let until = program
                    .eval_one(&frame.scope, limits)
                    .map_err(|source| StepError::Expression {
                        what: "until",
                        source,
                    })
                    .and_then(|value| {
                        time_of(&value).ok_or_else(|| {
                            StepError::Invalid(format!(
                                "`until` gave {value}, not a time (RFC 3339 text or Unix seconds)"
                            ))
                        })
                    });
                (json!({"until": program.source()}), until)
            }
        };
        let until = match until {
            Ok(until) => until,
            Err(error) => return Err(self.failed(step, record_id, input, &error, started_at)),
        };
        self.record(
            step,
            record_id,
            StepStatus::Succeeded,
            input,
            Some(json!({"until": until})),
            None,
            started_at,
            1,
        );
        Ok(until)
    }
}

/// The worse of a first stop (if any) and another.
fn worse(first: Option<RunError>, other: RunError) -> RunError {
    match first {
        Some(first) => first.worse(other),
        None => other,
    }
}

/// A time given as RFC 3339 text or Unix seconds.
fn time_of(value: &Value) -> Option<Timestamp> {
    match value {
        Value::String(text) => Timestamp::parse_rfc3339(text),
        Value::Number(seconds) => {
            let millis = seconds.as_f64()? * 1000.0;
            millis.is_finite().then_some(Timestamp(millis as i64))
        }
        _ => None,
    }
}

/// The JSON type of a value, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
