//! The steps the executor runs itself: blocks that hold steps (`if`, `switch`,
//! `parallel`, `for_each`) and `sleep`.
//!
//! A block's inner steps are recorded under their own ids, so a resumed execution finds
//! them done one by one. Inside a `for_each` each item's records carry a prefix
//! (`lines[3].price`), so a crash in item 900 of 1000 resumes at item 900. `if` and
//! `switch` record their decision before the chosen steps run, so a resumed execution
//! takes the same branch even if the condition would now say otherwise.

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, future, stream};
use serde_json::{Map, Value, json};
use switchboard_core::Timestamp;
use switchboard_files::{Format, FormatError, format};
use switchboard_project::{Flow, ForEachSource, ForEachStep, IfStep, Sleep, Step, SwitchStep};
use switchboard_store::StepStatus;

use super::{ExecutionRun, Frame, RunError};
use crate::steps::StepError;

/// The items of a `for_each`, each an item or the error that ends the list.
type Items = BoxStream<'static, Result<Value, StepError>>;

/// The task reading a `for_each`'s file: it answers how many rows it read.
type Reading = std::pin::Pin<Box<dyn std::future::Future<Output = Option<u64>> + Send>>;

/// The message of a read stopped because its `for_each` stopped.
const STOPPED: &str = "the for_each stopped";

fn stopped(format: Format) -> FormatError {
    FormatError {
        format,
        at: None,
        message: String::from(STOPPED),
    }
}

impl ExecutionRun<'_> {
    /// The decision an `if` or `switch` recorded in an earlier lease, else the one made
    /// now (recorded before its steps run, and committed with the first of them that
    /// has an effect).
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

    /// Runs a `for_each`: its steps once per item of a list, or per batch of a file's
    /// rows. A file is read on a blocking thread as the items are needed (the channel
    /// holds as many batches as run at once), so its size does not matter; its items'
    /// outputs are not collected either: the step's output is `{batches, rows}`.
    pub(super) async fn for_each(
        &self,
        flow: &Flow,
        step: &Step,
        record_id: &str,
        block: &ForEachStep,
        frame: &mut Frame,
    ) -> Result<Value, RunError> {
        let started_at = Timestamp::now();
        let (input, items, reading) = match self.for_each_items(block, frame).await {
            Ok(source) => source,
            Err((input, error)) => {
                return Err(self.failed(step, record_id, input, &error, started_at));
            }
        };
        let collect = reading.is_none();
        // Once an item stops the execution, no further item starts.
        let stopping = AtomicBool::new(false);
        let parent: &Frame = frame;
        let mut results = items
            .enumerate()
            .map(|(index, item)| {
                let (stopping, input) = (&stopping, &input);
                async move {
                    if stopping.load(Ordering::Relaxed) {
                        return None;
                    }
                    let item = match item {
                        Ok(item) => item,
                        Err(error) => {
                            stopping.store(true, Ordering::Relaxed);
                            let failed =
                                self.failed(step, record_id, input.clone(), &error, started_at);
                            return Some(Err(failed));
                        }
                    };
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
            .buffered(block.concurrency as usize);
        let mut outputs = Vec::new();
        let mut count = 0;
        let mut stopped: Option<RunError> = None;
        while let Some(result) = results.next().await {
            match result {
                None => {}
                Some(Ok(last)) => {
                    count += 1;
                    if collect {
                        outputs.push(last);
                    }
                }
                Some(Err(error)) => stopped = Some(worse(stopped, error)),
            }
        }
        drop(results);
        if let Some(error) = stopped {
            return Err(error);
        }
        let (input, output) = match reading {
            None => {
                let mut input = input;
                input["count"] = json!(count);
                (input, Value::Array(outputs))
            }
            Some(reading) => {
                let rows = reading.await.unwrap_or(0);
                (input, json!({"batches": count, "rows": rows}))
            }
        };
        self.succeeded(step, record_id, input, &output, started_at)
            .await?;
        frame.scope.set_step(&step.id, &output);
        Ok(output)
    }

    /// What a `for_each` goes through: its record's input, the items, and for a file,
    /// the reading task (which answers how many rows it read).
    async fn for_each_items(
        &self,
        block: &ForEachStep,
        frame: &Frame,
    ) -> Result<(Value, Items, Option<Reading>), (Value, StepError)> {
        let limits = &self.engine.config.expression_limits;
        match &block.source {
            ForEachSource::Items(program) => {
                let input = json!({"items": program.source()});
                let items = match program.eval_one(&frame.scope, limits) {
                    Ok(Value::Array(items)) => items,
                    Ok(other) => {
                        let error = StepError::Invalid(format!(
                            "`items` gave {}, not a list",
                            json_type(&other)
                        ));
                        return Err((input, error));
                    }
                    Err(source) => {
                        let what = "items";
                        return Err((input, StepError::Expression { what, source }));
                    }
                };
                Ok((input, stream::iter(items.into_iter().map(Ok)).boxed(), None))
            }
            ForEachSource::File(rows) => {
                let described = json!({"file": rows.path.source()});
                let path = rows.path.render(&frame.scope, limits).map_err(|source| {
                    (
                        described.clone(),
                        StepError::Expression {
                            what: "path",
                            source,
                        },
                    )
                })?;
                let format = rows.format.or_else(|| Format::of_name(&path));
                let Some(format @ (Format::Csv | Format::Ndjson)) = format else {
                    let error = StepError::Invalid(format!(
                        "`{path}`: rows are read from csv or ndjson; set `format`"
                    ));
                    return Err((described, error));
                };
                let input = json!({"file": path, "format": format.as_str(), "batch": rows.batch});
                let reader = self
                    .engine
                    .files
                    .reader(&path)
                    .await
                    .map_err(|error| (input.clone(), StepError::Invalid(error.to_string())))?;
                let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Value, StepError>>(
                    block.concurrency as usize,
                );
                let (batch, csv) = (rows.batch as usize, rows.csv.clone());
                let reading = tokio::task::spawn_blocking(move || {
                    let mut rows = Vec::with_capacity(batch);
                    let read = format::read_rows(format, reader, &csv, |row| {
                        rows.push(row);
                        if rows.len() == batch {
                            let full = Value::Array(std::mem::take(&mut rows));
                            // The for_each stopped: stop reading too.
                            sender
                                .blocking_send(Ok(full))
                                .map_err(|_| stopped(format))?;
                        }
                        Ok(())
                    });
                    let outcome = match read {
                        Ok(count) if rows.is_empty() => Ok(count),
                        Ok(count) => sender
                            .blocking_send(Ok(Value::Array(rows)))
                            .map(|()| count)
                            .map_err(|_| stopped(format)),
                        Err(error) => Err(error),
                    };
                    match outcome {
                        Ok(count) => count,
                        Err(error) => {
                            if error.message != STOPPED {
                                let error = StepError::Invalid(format!("`{path}`: {error}"));
                                let _ = sender.blocking_send(Err(error));
                            }
                            0
                        }
                    }
                });
                let items = stream::unfold(receiver, |mut receiver| async move {
                    receiver.recv().await.map(|item| (item, receiver))
                })
                .boxed();
                let reading: Reading = Box::pin(async move { reading.await.ok() });
                Ok((input, items, Some(reading)))
            }
        }
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
