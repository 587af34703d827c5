//! Alert rules: checked against the integration's flows; each webhook target becomes a
//! flow of its own (an `alert` trigger and one `http` step), so a notification is an
//! execution like any other: durable, recorded and inspectable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::{FileChecker, StepRefs, is_name};
use crate::model::{Alert, AlertCondition, Flow, Step, StepKind, Trigger, alert_webhook_flow};
use crate::position::did_you_mean;
use crate::spec::{AlertSpec, ConditionSpec, HttpSpec, NotifySpec};

/// The fewest ended executions an `error_rate` alert fires on, when not given.
const DEFAULT_MIN_EXECUTIONS: u64 = 10;

const CONDITIONS: [&str; 5] = [
    "failures",
    "error_rate",
    "p95_duration",
    "queue_age",
    "endpoint_disabled",
];

impl FileChecker<'_> {
    /// Compiles the alerts of `integration`, adding a flow to `flows` for each webhook target.
    pub(super) fn alerts(
        &mut self,
        integration: &str,
        specs: BTreeMap<String, Spanned<AlertSpec>>,
        flows: &mut BTreeMap<String, Arc<Flow>>,
    ) -> Vec<Arc<Alert>> {
        let mut alerts = Vec::new();
        for (name, spec) in specs {
            let at = spec.referenced;
            if !is_name(&name) {
                self.report(
                    &at,
                    format!("the alert name `{name}` must be lower-case letters, digits and `-`"),
                );
            }
            let problems_before = self.problems.len();
            let AlertSpec {
                description,
                flow,
                when,
                notify,
            } = spec.value;
            if let Some(flow) = &flow {
                self.known_flow(flow, flows, "watches");
            }
            let condition = self.condition(when);
            let mut targets = Vec::new();
            if notify.value.is_empty() {
                self.report(
                    &notify.referenced,
                    format!("the alert `{name}` notifies no one: add a `webhook` or a `flow`"),
                );
            }
            for (index, target) in notify.value.into_iter().enumerate() {
                if let Some(flow) = self.notify_target(integration, &name, index, target, flows) {
                    targets.push(flow);
                }
            }
            let (Some(condition), true) = (condition, self.problems.len() == problems_before)
            else {
                continue;
            };
            alerts.push(Arc::new(Alert {
                name,
                integration: integration.to_owned(),
                description,
                flow: flow.map(|flow| flow.value),
                condition,
                notify: targets,
            }));
        }
        alerts
    }

    /// Reports `flow` unless it names a flow of the integration.
    fn known_flow(
        &mut self,
        flow: &Spanned<String>,
        flows: &BTreeMap<String, Arc<Flow>>,
        verb: &str,
    ) -> bool {
        if flows.contains_key(&flow.value) {
            return true;
        }
        let hint = did_you_mean(&flow.value, flows.keys().map(String::as_str))
            .map(|known| format!("; did you mean `{known}`?"))
            .unwrap_or_default();
        self.report(
            &flow.referenced,
            format!(
                "the alert {verb} `{}`, which is not a flow of this integration{hint}",
                flow.value
            ),
        );
        false
    }

    fn condition(&mut self, when: Spanned<ConditionSpec>) -> Option<AlertCondition> {
        let at = when.referenced;
        let ConditionSpec {
            failures,
            error_rate,
            p95_duration,
            queue_age,
            endpoint_disabled,
        } = when.value;
        let set = [
            failures.is_some(),
            error_rate.is_some(),
            p95_duration.is_some(),
            queue_age.is_some(),
            endpoint_disabled.is_some(),
        ];
        if set.iter().filter(|&&present| present).count() != 1 {
            self.report(
                &at,
                format!(
                    "`when` takes exactly one condition: one of {}",
                    CONDITIONS.join(", ")
                ),
            );
            return None;
        }
        let condition = if let Some(failures) = failures {
            if failures.count.value == 0 {
                self.report(&failures.count.referenced, "`count` must be at least 1");
            }
            AlertCondition::Failures {
                count: failures.count.value,
                within: self.window(failures.within.into(), &at)?,
            }
        } else if let Some(rate) = error_rate {
            if !(0.0..1.0).contains(&rate.above.value) {
                self.report(
                    &rate.above.referenced,
                    format!("`above` is a share of executions, from 0 up to (not including) 1; it is {}", rate.above.value),
                );
            }
            AlertCondition::ErrorRate {
                above: rate.above.value,
                within: self.window(rate.within.into(), &at)?,
                min_executions: rate.min_executions.unwrap_or(DEFAULT_MIN_EXECUTIONS).max(1),
            }
        } else if let Some(p95) = p95_duration {
            AlertCondition::P95Duration {
                above: self.window(p95.above.into(), &at)?,
                within: self.window(p95.within.into(), &at)?,
            }
        } else if let Some(disabled) = endpoint_disabled {
            AlertCondition::EndpointDisabled {
                tenant: disabled.tenant,
            }
        } else {
            let queue = queue_age?;
            AlertCondition::QueueAge {
                above: self.window(queue.above.into(), &at)?,
            }
        };
        Some(condition)
    }

    /// A non-zero duration.
    fn window(&mut self, duration: Duration, at: &Location) -> Option<Duration> {
        if duration.is_zero() {
            self.report(at, "an alert's durations must be longer than zero");
            return None;
        }
        Some(duration)
    }

    /// The flow a target starts: the named `alert` flow, or one made for a webhook.
    fn notify_target(
        &mut self,
        integration: &str,
        alert: &str,
        index: usize,
        target: Spanned<NotifySpec>,
        flows: &mut BTreeMap<String, Arc<Flow>>,
    ) -> Option<String> {
        let at = target.referenced;
        let NotifySpec {
            webhook,
            headers,
            flow,
        } = target.value;
        match (webhook, flow) {
            (Some(url), None) => {
                let spec = HttpSpec {
                    method: Some(Spanned::new(String::from("POST"), at, at)),
                    json: Some(Spanned::new(String::from("."), url.referenced, url.defined)),
                    url,
                    headers,
                    query: BTreeMap::new(),
                    body: None,
                    timeout: None,
                    accept: Vec::new(),
                    idempotency: None,
                    idempotency_header: None,
                    paginate: None,
                };
                let step = self.http(&spec, &at, &StepRefs::NONE)?;
                let name = alert_webhook_flow(alert, index);
                let flow = Flow {
                    integration: integration.to_owned(),
                    name: name.clone(),
                    description: Some(format!("Posts alert `{alert}` to a webhook.")),
                    trigger: Trigger::Alert,
                    steps: vec![Step {
                        id: String::from("post"),
                        kind: StepKind::Http(Box::new(step)),
                        retry: None,
                        when: None,
                    }],
                    retry: None,
                    on_error: None,
                    timeout: None,
                    concurrency: None,
                    ordering: None,
                    debounce: None,
                    throttle: None,
                };
                flows.insert(name.clone(), Arc::new(flow));
                Some(name)
            }
            (None, Some(flow)) => {
                if !headers.is_empty() {
                    self.report(
                        &at,
                        "`headers` go with a `webhook` target; an alert flow sets its own",
                    );
                }
                if !self.known_flow(&flow, flows, "notifies") {
                    return None;
                }
                if flows
                    .get(&flow.value)
                    .is_some_and(|known| !matches!(known.trigger, Trigger::Alert))
                {
                    self.report(
                        &flow.referenced,
                        format!("the flow `{}` is not started by alerts: give it `trigger: {{ alert: {{}} }}`", flow.value),
                    );
                    return None;
                }
                Some(flow.value)
            }
            _ => {
                self.report(
                    &at,
                    "a notify target is a `webhook` (a URL) or a `flow`, one of the two",
                );
                None
            }
        }
    }
}
