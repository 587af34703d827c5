//! The `call` step and a flow's dispatch: a child execution, linked both ways (the
//! child's `parent_id`, the step's `execution_id`).
//!
//! The child is queued in the same commit as the step's record. A step that does not
//! wait is then done. One that waits is recorded `waiting` and the execution waits too,
//! holding no worker; the child's end wakes it (in the child's last commit), and the
//! step's second record takes the child's output, or fails when the child did.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::{ExecutionId, Timestamp};
use switchboard_project::{CallStep, CallTarget, Flow, Step};
use switchboard_store::{ErrorRecord, ExecutionStatus, Parent, StepStatus};

use super::{Done, ExecutionRun, Frame, RunError, timed_out};
use crate::steps::StepError;

/// How long a waiting parent sleeps before it looks at its child again, should no end
/// wake it (its child's end always does; this is a safety net).
const CHILD_RECHECK: Duration = Duration::from_secs(3600);

impl ExecutionRun<'_> {
    /// Starts the child of a `call` step; waits for it when the step does.
    pub(super) async fn call(
        &self,
        step: &Step,
        record_id: &str,
        call: &CallStep,
        frame: &Frame,
    ) -> Result<Value, RunError> {
        let started_at = Timestamp::now();
        let target = match self.target(call, frame) {
            Ok(target) => target,
            Err(error) => {
                let input = json!({"wait": call.wait});
                return Err(self.failed(step, record_id, input, &error, started_at));
            }
        };
        let input = json!({"flow": qualified(&target), "wait": call.wait});
        let child_input = match &call.input {
            Some(program) => {
                match program.eval_one(&frame.scope, &self.engine.config.expression_limits) {
                    Ok(value) => value,
                    Err(source) => {
                        let error = StepError::Expression {
                            what: "input",
                            source,
                        };
                        return Err(self.failed(step, record_id, input, &error, started_at));
                    }
                }
            }
            None => self.leased.input.clone(),
        };
        let leased = self.leased;
        let trigger = match call.target {
            // A dispatched request reaches its flow as it came.
            CallTarget::Dispatch(_) => leased.trigger.clone(),
            CallTarget::Flow { .. } => json!({
                "kind": "call",
                "parent": {
                    "execution_id": leased.id,
                    "integration": leased.integration,
                    "flow": leased.flow,
                    "step": record_id,
                },
            }),
        };
        let mut child = self.engine.prepare_or_plain(&target, trigger, child_input);
        child.dedupe = None;
        child.parent = Some(Parent {
            id: leased.id.clone(),
            waits: call.wait,
        });
        let output = json!({"execution_id": child.id, "flow": qualified(&target)});
        let child_id = child.id.clone();
        self.lock().children.push(child);
        if call.wait {
            self.record(
                step,
                record_id,
                StepStatus::Waiting,
                input,
                Some(output),
                None,
                started_at,
                1,
            );
            return Err(RunError::Wait {
                at: self.recheck_at(),
                awaiting: vec![child_id],
            });
        }
        self.succeeded(step, record_id, input, &output, started_at)
            .await?;
        Ok(output)
    }

    /// Resumes a `call` step that waits: the child's output once it succeeded, a failure
    /// once it did not, else another wait.
    pub(super) async fn call_ended(
        &self,
        step: &Step,
        record_id: &str,
        call: &CallStep,
        done: &Done,
    ) -> Result<Value, RunError> {
        let started_at = Timestamp::now();
        let input = json!({"flow": done.output["flow"], "wait": true});
        let child: Option<ExecutionId> = done.output["execution_id"]
            .as_str()
            .and_then(|id| id.parse().ok());
        let Some(child) = child else {
            let error = StepError::Invalid(String::from("the step's record names no child"));
            return Err(self.failed(step, record_id, input, &error, started_at));
        };
        let outcome = match self.engine.store.outcome(&child).await {
            Ok(outcome) => outcome,
            Err(error) => {
                return Err(RunError::Retry {
                    at: Timestamp::now().after(Duration::from_secs(5)),
                    error: ErrorRecord {
                        code: String::from("store_unavailable"),
                        message: format!("cannot read the called execution {child}: {error}"),
                        step: Some(record_id.to_owned()),
                    },
                });
            }
        };
        let Some(outcome) = outcome else {
            let error = StepError::Call {
                code: String::from("call_failed"),
                message: format!("the called execution {child} no longer exists"),
            };
            return Err(self.failed(step, record_id, input, &error, started_at));
        };
        if !outcome.status.is_final() {
            if let Some((timeout, deadline)) = self.deadline
                && deadline <= Timestamp::now()
            {
                return Err(timed_out(&step.id, timeout));
            }
            return Err(RunError::Wait {
                at: self.recheck_at(),
                awaiting: vec![child],
            });
        }
        if outcome.status != ExecutionStatus::Succeeded {
            let why = outcome.error.as_ref().map_or(String::new(), |error| {
                format!(": {} ({})", error.message, error.code)
            });
            let error = StepError::Call {
                code: String::from("call_failed"),
                message: format!(
                    "the called flow `{}` ended {} in execution {child}{why}",
                    done.output["flow"].as_str().unwrap_or_default(),
                    outcome.status.as_str(),
                ),
            };
            return Err(self.failed(step, record_id, input, &error, started_at));
        }
        let output = outcome.output.unwrap_or(Value::Null);
        if let (CallTarget::Dispatch(_), Some(response)) = (&call.target, outcome.response) {
            self.lock().response.get_or_insert(response);
        }
        self.succeeded(step, record_id, input, &output, started_at)
            .await?;
        Ok(output)
    }

    /// The flow a `call` starts: the one it names, or the one its dispatch program
    /// names among the integration's other flows.
    fn target(&self, call: &CallStep, frame: &Frame) -> Result<std::sync::Arc<Flow>, StepError> {
        let project = self.engine.project();
        let integration = &self.leased.integration;
        let (integration, name) = match &call.target {
            CallTarget::Flow { integration, flow } => (integration.as_str(), flow.clone()),
            CallTarget::Dispatch(program) => {
                let value = program
                    .eval_one(&frame.scope, &self.engine.config.expression_limits)
                    .map_err(|source| StepError::Expression {
                        what: "dispatch",
                        source,
                    })?;
                let Value::String(name) = value else {
                    return Err(StepError::Call {
                        code: String::from("unknown_flow"),
                        message: format!("`dispatch` gave {value}, not the name of a flow"),
                    });
                };
                if name == self.leased.flow {
                    return Err(StepError::Call {
                        code: String::from("unknown_flow"),
                        message: format!("`dispatch` gave `{name}`, the dispatching flow itself"),
                    });
                }
                (integration.as_str(), name)
            }
        };
        project
            .flow(integration, &name)
            .cloned()
            .ok_or_else(|| StepError::Call {
                code: String::from("unknown_flow"),
                message: format!("there is no flow `{name}` in integration `{integration}`"),
            })
    }

    /// When a waiting parent looks at its child again if nothing woke it: at its
    /// timeout, else after [`CHILD_RECHECK`].
    fn recheck_at(&self) -> Timestamp {
        let recheck = Timestamp::now().after(CHILD_RECHECK);
        self.deadline
            .map_or(recheck, |(_, deadline)| deadline.min(recheck))
    }
}

/// `integration/flow`.
fn qualified(flow: &Flow) -> String {
    format!("{}/{}", flow.integration, flow.name)
}
