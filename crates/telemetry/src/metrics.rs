//! Prometheus metrics: every name in [`names`], every update a method of [`Metrics`].
//!
//! Labels are low-cardinality by construction: integration and flow names come from the
//! project (never from a request that named an unknown one), and every other label value
//! is a `&'static str` chosen by the code. No execution id, URL or header reaches a label.
//!
//! Each process (and each test server) owns its own [`Metrics`]; nothing is global.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// The metric names, with their unit in the name.
pub mod names {
    /// Inbound webhook requests, by `outcome` (`accepted`, `duplicate`, `handshake`,
    /// `rejected`) and,
    /// when rejected, `reason`.
    pub const WEBHOOKS_RECEIVED: &str = "switchboard_webhooks_received_total";
    /// Executions a worker started running (a resumed execution counts again).
    pub const EXECUTIONS_STARTED: &str = "switchboard_executions_started_total";
    /// Executions that reached an end, by `outcome`.
    pub const EXECUTIONS_FINISHED: &str = "switchboard_executions_finished_total";
    /// Time from an execution's acceptance to its end, by `outcome`.
    pub const EXECUTION_DURATION: &str = "switchboard_execution_duration_seconds";
    /// Executions running now.
    pub const EXECUTIONS_RUNNING: &str = "switchboard_executions_running";
    /// Failed step attempts that will be tried again, by step `kind`.
    pub const RETRIES_SCHEDULED: &str = "switchboard_retries_scheduled_total";
    /// Time one step took, by step `kind` and `outcome`.
    pub const STEP_DURATION: &str = "switchboard_step_duration_seconds";
    /// Executions waiting for a worker.
    pub const QUEUE_DEPTH: &str = "switchboard_queue_depth_executions";
    /// How long the oldest waiting execution has waited (0 when none waits).
    pub const QUEUE_OLDEST_AGE: &str = "switchboard_queue_oldest_age_seconds";
    /// Requests sent by `http` steps, by `status_class` (`2xx` … `5xx`, or `error`).
    pub const OUTBOUND_HTTP_REQUESTS: &str = "switchboard_outbound_http_requests_total";
    /// Time from sending an `http` step's request to its last body byte, by `status_class`.
    pub const OUTBOUND_HTTP_DURATION: &str = "switchboard_outbound_http_request_duration_seconds";
    /// Time one group commit of the store took.
    pub const STORE_COMMIT_DURATION: &str = "switchboard_store_commit_duration_seconds";
    /// Writes that one group commit of the store carried.
    pub const STORE_COMMIT_BATCH: &str = "switchboard_store_commit_batch_writes";
    /// Ended executions deleted because they were older than the retention.
    pub const EXECUTIONS_PRUNED: &str = "switchboard_executions_pruned_total";
    /// 1 while an alert fires, 0 otherwise, by `integration` and `alert`.
    pub const ALERTS_FIRING: &str = "switchboard_alerts_firing";
    /// Outbound webhook messages posted, by `outcome` (`accepted`, `duplicate`).
    pub const WEBHOOK_MESSAGES: &str = "switchboard_webhook_messages_total";
    /// Deliveries queued for outbound messages (one per matching endpoint).
    pub const WEBHOOK_DELIVERIES: &str = "switchboard_webhook_deliveries_queued_total";
    /// Outbound delivery attempts, by `outcome` and `status_class`.
    pub const WEBHOOK_ATTEMPTS: &str = "switchboard_webhook_attempts_total";
    /// Time from sending a delivery to the end of its answer, by `status_class`.
    pub const WEBHOOK_ATTEMPT_DURATION: &str = "switchboard_webhook_attempt_duration_seconds";
    /// Endpoints Switchboard disabled, by `reason` (`gone`, `failing`).
    pub const WEBHOOK_ENDPOINTS_DISABLED: &str = "switchboard_webhook_endpoints_disabled_total";
    /// Events appended to the bus, by `source` (`api`, `flow`).
    pub const EVENTS_PUBLISHED: &str = "switchboard_events_published_total";
    /// Executions of subscribing flows queued from events.
    pub const EVENTS_DISPATCHED: &str = "switchboard_events_dispatched_total";
    /// Events a subscriber's filter failed on, by `integration` and `flow`.
    pub const EVENT_FILTER_ERRORS: &str = "switchboard_event_filter_errors_total";
    /// Reloads of the project by `serve --watch`, by `outcome` (`applied`, `refused`).
    pub const PROJECT_RELOADS: &str = "switchboard_project_reloads_total";
    /// Schedule fires, by `integration` and `outcome` (`fired`, `caught_up`, `skipped`,
    /// `missed`, `manual`).
    pub const SCHEDULE_FIRES: &str = "switchboard_schedule_fires_total";
    /// Time from a fire's scheduled time to its execution being queued (on-time fires).
    pub const SCHEDULE_LATENESS: &str = "switchboard_schedule_lateness_seconds";
    /// Files taken by `files` triggers, by `integration`.
    pub const FILES_TAKEN: &str = "switchboard_files_taken_total";
    /// Always 1; its `version` label names the running build.
    pub const BUILD_INFO: &str = "switchboard_build_info";
}

/// The type of a metric.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution, in the unit given.
    Histogram(Unit),
}

/// One metric: its name, type and help text.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The name, with its unit.
    pub name: &'static str,
    /// The type.
    pub kind: Kind,
    /// The help text of the scrape.
    pub help: &'static str,
}

/// Every metric, described once; [`Metrics::new`] registers each description.
pub const ALL: &[Metric] = {
    use Kind::{Counter, Gauge, Histogram};
    use names::*;
    const fn metric(name: &'static str, kind: Kind, help: &'static str) -> Metric {
        Metric { name, kind, help }
    }
    &[
        metric(
            WEBHOOKS_RECEIVED,
            Counter,
            "Inbound webhook requests, by outcome and rejection reason.",
        ),
        metric(
            EXECUTIONS_STARTED,
            Counter,
            "Executions a worker started running; a resumed execution counts again.",
        ),
        metric(
            EXECUTIONS_FINISHED,
            Counter,
            "Executions that reached an end, by outcome.",
        ),
        metric(
            EXECUTION_DURATION,
            Histogram(Unit::Seconds),
            "Seconds from an execution's acceptance to its end, by outcome.",
        ),
        metric(EXECUTIONS_RUNNING, Gauge, "Executions running now."),
        metric(
            STEP_DURATION,
            Histogram(Unit::Seconds),
            "Seconds one step attempt took, by step kind and outcome.",
        ),
        metric(
            RETRIES_SCHEDULED,
            Counter,
            "Failed step attempts that will be tried again, by step kind.",
        ),
        metric(QUEUE_DEPTH, Gauge, "Executions waiting for a worker."),
        metric(
            QUEUE_OLDEST_AGE,
            Gauge,
            "Seconds the oldest waiting execution has waited.",
        ),
        metric(
            OUTBOUND_HTTP_REQUESTS,
            Counter,
            "Requests sent by http steps, by status class (or error).",
        ),
        metric(
            OUTBOUND_HTTP_DURATION,
            Histogram(Unit::Seconds),
            "Seconds from sending an http step's request to its last body byte.",
        ),
        metric(
            STORE_COMMIT_DURATION,
            Histogram(Unit::Seconds),
            "Seconds one group commit of the store took.",
        ),
        metric(
            STORE_COMMIT_BATCH,
            Histogram(Unit::Count),
            "Writes that one group commit of the store carried.",
        ),
        metric(
            EXECUTIONS_PRUNED,
            Counter,
            "Ended executions deleted because they were older than the retention.",
        ),
        metric(ALERTS_FIRING, Gauge, "1 while an alert fires, 0 otherwise."),
        metric(
            WEBHOOK_MESSAGES,
            Counter,
            "Outbound webhook messages posted, by outcome.",
        ),
        metric(
            WEBHOOK_DELIVERIES,
            Counter,
            "Deliveries queued for outbound messages, one per matching endpoint.",
        ),
        metric(
            WEBHOOK_ATTEMPTS,
            Counter,
            "Outbound delivery attempts, by outcome and status class.",
        ),
        metric(
            WEBHOOK_ATTEMPT_DURATION,
            Histogram(Unit::Seconds),
            "Time from sending a delivery to the end of its answer.",
        ),
        metric(
            WEBHOOK_ENDPOINTS_DISABLED,
            Counter,
            "Endpoints Switchboard disabled, by reason.",
        ),
        metric(
            EVENTS_PUBLISHED,
            Counter,
            "Events appended to the bus, by source (api, flow).",
        ),
        metric(
            PROJECT_RELOADS,
            Counter,
            "Reloads of the project by serve --watch, by outcome (applied, refused).",
        ),
        metric(
            SCHEDULE_FIRES,
            Counter,
            "Schedule fires, by integration and outcome (fired, caught_up, skipped, missed, manual).",
        ),
        metric(
            FILES_TAKEN,
            Counter,
            "Files taken by files triggers, each starting one execution, by integration.",
        ),
        metric(
            SCHEDULE_LATENESS,
            Histogram(Unit::Seconds),
            "Time from a fire's scheduled time to its execution being queued.",
        ),
        metric(
            EVENTS_DISPATCHED,
            Counter,
            "Executions of subscribing flows queued from events.",
        ),
        metric(
            EVENT_FILTER_ERRORS,
            Counter,
            "Events a subscriber's filter failed on, by integration and flow.",
        ),
        metric(
            BUILD_INFO,
            Gauge,
            "Always 1; the version label names the running build.",
        ),
    ]
};

/// Bucket bounds for durations, in seconds: 5 ms to 5 minutes.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Bucket bounds for group-commit sizes, up to the writer's batch limit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// How an inbound webhook request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Durable and acknowledged.
    Accepted,
    /// A repeat of a request seen within the flow's de-duplication window.
    Duplicate,
    /// A provider's handshake, answered by the flow's `challenge`; nothing started.
    Handshake,
    /// Refused; the reason is the error code of the answer.
    Rejected(&'static str),
}

/// The metrics of one Switchboard process.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh set of metrics, every one described.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        // Both matchers are valid and the bucket lists are not empty, so neither call fails.
        let builder = builder
            .set_buckets_for_metric(Matcher::Suffix(String::from("_seconds")), SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let builder = builder
            .set_buckets_for_metric(
                Matcher::Full(names::STORE_COMMIT_BATCH.to_owned()),
                BATCH_BUCKETS,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Self { recorder, handle };
        metrics.describe();
        metrics
            .gauge(
                names::BUILD_INFO,
                vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
            )
            .set(1.0);
        metrics
    }

    fn describe(&self) {
        for metric in ALL {
            let (name, help) = (metric.name.into(), metric.help.into());
            match metric.kind {
                Kind::Counter => self.recorder.describe_counter(name, None, help),
                Kind::Gauge => self.recorder.describe_gauge(name, None, help),
                Kind::Histogram(unit) => self.recorder.describe_histogram(name, Some(unit), help),
            }
        }
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; call it every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// An inbound webhook request ended. `integration` and `flow` are empty when the
    /// request named no flow of the project.
    pub fn webhook_received(&self, integration: &str, flow: &str, outcome: WebhookOutcome) {
        let mut labels = flow_labels(integration, flow);
        match outcome {
            WebhookOutcome::Accepted => labels.push(Label::new("outcome", "accepted")),
            WebhookOutcome::Duplicate => labels.push(Label::new("outcome", "duplicate")),
            WebhookOutcome::Handshake => labels.push(Label::new("outcome", "handshake")),
            WebhookOutcome::Rejected(reason) => {
                labels.push(Label::new("outcome", "rejected"));
                labels.push(Label::new("reason", reason));
            }
        }
        self.counter(names::WEBHOOKS_RECEIVED, labels).increment(1);
    }

    /// A worker started running an execution. The answer counts it as running until it
    /// is dropped.
    pub fn execution_started(
        self: &Arc<Self>,
        integration: &str,
        flow: &str,
        trigger: &'static str,
    ) -> RunningExecution {
        let mut labels = flow_labels(integration, flow);
        labels.push(Label::new("trigger", trigger));
        self.counter(names::EXECUTIONS_STARTED, labels).increment(1);
        let running = self.gauge(names::EXECUTIONS_RUNNING, flow_labels(integration, flow));
        running.increment(1.0);
        RunningExecution { running }
    }

    /// An execution ended with `outcome`, `since_accepted` after it was accepted.
    pub fn execution_finished(
        &self,
        integration: &str,
        flow: &str,
        trigger: &'static str,
        outcome: &'static str,
        since_accepted: Duration,
    ) {
        let mut labels = flow_labels(integration, flow);
        labels.push(Label::new("outcome", outcome));
        self.histogram(names::EXECUTION_DURATION, labels.clone())
            .record(since_accepted.as_secs_f64());
        labels.push(Label::new("trigger", trigger));
        self.counter(names::EXECUTIONS_FINISHED, labels)
            .increment(1);
    }

    /// A step of `kind` ended with `outcome` after `took`.
    pub fn step_finished(
        &self,
        integration: &str,
        flow: &str,
        kind: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        let mut labels = flow_labels(integration, flow);
        labels.push(Label::new("kind", kind));
        labels.push(Label::new("outcome", outcome));
        self.histogram(names::STEP_DURATION, labels)
            .record(took.as_secs_f64());
    }

    /// A failed attempt of a step of `kind` will be tried again.
    pub fn retry_scheduled(&self, integration: &str, flow: &str, kind: &'static str) {
        let mut labels = flow_labels(integration, flow);
        labels.push(Label::new("kind", kind));
        self.counter(names::RETRIES_SCHEDULED, labels).increment(1);
    }

    /// `count` events were appended to the bus by `source` (`api`, `flow`).
    pub fn events_published(&self, source: &'static str, count: usize) {
        self.counter(names::EVENTS_PUBLISHED, vec![Label::new("source", source)])
            .increment(count as u64);
    }

    /// `serve --watch` reloaded the project (`applied`) or found problems in it and kept
    /// the running version (`refused`).
    pub fn project_reloaded(&self, outcome: &'static str) {
        self.counter(names::PROJECT_RELOADS, vec![Label::new("outcome", outcome)])
            .increment(1);
    }

    /// `count` fires of a schedule of `integration` ended as `outcome` (`fired`,
    /// `caught_up`, `skipped`, `missed`, `manual`).
    pub fn schedule_fires(&self, integration: &str, outcome: &'static str, count: u64) {
        let labels = vec![
            Label::new("integration", integration.to_owned()),
            Label::new("outcome", outcome),
        ];
        self.counter(names::SCHEDULE_FIRES, labels).increment(count);
    }

    /// `count` files were taken by a `files` trigger of `integration`.
    pub fn files_taken(&self, integration: &str, count: u64) {
        let labels = vec![Label::new("integration", integration.to_owned())];
        self.counter(names::FILES_TAKEN, labels).increment(count);
    }

    /// An on-time fire's execution was queued `late` after its scheduled time.
    pub fn schedule_lateness(&self, late: Duration) {
        self.histogram(names::SCHEDULE_LATENESS, Vec::new())
            .record(late.as_secs_f64());
    }

    /// `count` executions of subscribing flows were queued from events.
    pub fn events_dispatched(&self, count: usize) {
        self.counter(names::EVENTS_DISPATCHED, Vec::new())
            .increment(count as u64);
    }

    /// A subscriber's filter failed on an event.
    pub fn event_filter_failed(&self, integration: &str, flow: &str) {
        self.counter(names::EVENT_FILTER_ERRORS, flow_labels(integration, flow))
            .increment(1);
    }

    /// An `http` step's request ended with `status` (`None`: no answer), after `took`.
    pub fn outbound_http(
        &self,
        integration: &str,
        flow: &str,
        status: Option<u16>,
        took: Duration,
    ) {
        let mut labels = flow_labels(integration, flow);
        labels.push(Label::new("status_class", status_class(status)));
        self.counter(names::OUTBOUND_HTTP_REQUESTS, labels.clone())
            .increment(1);
        self.histogram(names::OUTBOUND_HTTP_DURATION, labels)
            .record(took.as_secs_f64());
    }

    /// An outbound message was posted; `deliveries` were queued for it.
    pub fn webhook_message(&self, duplicate: bool, deliveries: usize) {
        let outcome = if duplicate { "duplicate" } else { "accepted" };
        self.counter(
            names::WEBHOOK_MESSAGES,
            vec![Label::new("outcome", outcome)],
        )
        .increment(1);
        self.counter(names::WEBHOOK_DELIVERIES, Vec::new())
            .increment(deliveries as u64);
    }

    /// A delivery attempt ended with `status` (none: no answer) after `took`.
    pub fn webhook_attempt(&self, succeeded: bool, status: Option<u16>, took: Duration) {
        let class = status_class(status);
        let outcome = if succeeded { "succeeded" } else { "failed" };
        self.counter(
            names::WEBHOOK_ATTEMPTS,
            vec![
                Label::new("outcome", outcome),
                Label::new("status_class", class),
            ],
        )
        .increment(1);
        self.histogram(
            names::WEBHOOK_ATTEMPT_DURATION,
            vec![Label::new("status_class", class)],
        )
        .record(took.as_secs_f64());
    }

    /// Switchboard disabled an endpoint: it answered `410 Gone` (`gone`) or failed for
    /// too long (`failing`).
    pub fn webhook_endpoint_disabled(&self, reason: &'static str) {
        self.counter(
            names::WEBHOOK_ENDPOINTS_DISABLED,
            vec![Label::new("reason", reason)],
        )
        .increment(1);
    }

    /// The store committed `writes` writes as one transaction in `took`.
    pub fn store_committed(&self, writes: usize, took: Duration) {
        self.histogram(names::STORE_COMMIT_DURATION, Vec::new())
            .record(took.as_secs_f64());
        // Batches hold at most a few hundred writes, exact in an f64.
        #[allow(clippy::cast_precision_loss)]
        self.histogram(names::STORE_COMMIT_BATCH, Vec::new())
            .record(writes as f64);
    }

    /// `depth` executions of a flow wait for a worker, the oldest for `oldest_age`.
    pub fn queue(&self, integration: &str, flow: &str, depth: u64, oldest_age: Duration) {
        #[allow(clippy::cast_precision_loss)]
        self.gauge(names::QUEUE_DEPTH, flow_labels(integration, flow))
            .set(depth as f64);
        self.gauge(names::QUEUE_OLDEST_AGE, flow_labels(integration, flow))
            .set(oldest_age.as_secs_f64());
    }

    /// `count` ended executions past retention were deleted.
    pub fn executions_pruned(&self, count: u64) {
        self.counter(names::EXECUTIONS_PRUNED, Vec::new())
            .increment(count);
    }

    /// An alert of `integration` was evaluated as firing or not.
    pub fn alert_evaluated(&self, integration: &str, alert: &str, firing: bool) {
        let labels = vec![
            Label::new("integration", integration.to_owned()),
            Label::new("alert", alert.to_owned()),
        ];
        self.gauge(names::ALERTS_FIRING, labels)
            .set(if firing { 1.0 } else { 0.0 });
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }
}

/// Counts one execution as running while it lives.
#[must_use = "the execution counts as running only while this lives"]
pub struct RunningExecution {
    running: Gauge,
}

impl Drop for RunningExecution {
    fn drop(&mut self) {
        self.running.decrement(1.0);
    }
}

fn flow_labels(integration: &str, flow: &str) -> Vec<Label> {
    vec![
        Label::new("integration", integration.to_owned()),
        Label::new("flow", flow.to_owned()),
    ]
}

/// `2xx` … `5xx` for a status, `error` for no answer.
fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) | None => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_renders_with_its_help_and_labels() {
        let metrics = Metrics::new();
        metrics.webhook_received(
            "shop",
            "orders",
            WebhookOutcome::Rejected("payload_too_large"),
        );
        let text = metrics.render();
        assert!(text.contains("# HELP switchboard_webhooks_received_total Inbound webhook"));
        assert!(text.contains("# TYPE switchboard_webhooks_received_total counter"));
        assert!(text.contains(r#"switchboard_webhooks_received_total{integration="shop",flow="orders",outcome="rejected",reason="payload_too_large"} 1"#), "{text}");
    }

    #[test]
    fn durations_are_histograms_and_running_counts_down_on_drop() {
        let metrics = Arc::new(Metrics::new());
        let running = metrics.execution_started("shop", "orders", "webhook");
        metrics.step_finished(
            "shop",
            "orders",
            "http",
            "succeeded",
            Duration::from_millis(30),
        );
        metrics.upkeep();
        let text = metrics.render();
        assert!(
            text.contains(r#"switchboard_executions_running{integration="shop",flow="orders"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"switchboard_step_duration_seconds_bucket{integration="shop",flow="orders",kind="http",outcome="succeeded",le="0.05"} 1"#), "{text}");
        drop(running);
        assert!(
            metrics
                .render()
                .contains(r#"switchboard_executions_running{integration="shop",flow="orders"} 0"#)
        );
    }

    #[test]
    fn every_metric_is_described_once_and_scrapes_with_its_help() {
        let metrics = Arc::new(Metrics::new());
        let _running = metrics.execution_started("a", "b", "webhook");
        metrics.webhook_received("a", "b", WebhookOutcome::Accepted);
        metrics.execution_finished("a", "b", "webhook", "succeeded", Duration::ZERO);
        metrics.step_finished("a", "b", "http", "succeeded", Duration::ZERO);
        metrics.retry_scheduled("a", "b", "http");
        metrics.queue("a", "b", 0, Duration::ZERO);
        metrics.outbound_http("a", "b", Some(200), Duration::ZERO);
        metrics.store_committed(1, Duration::ZERO);
        metrics.executions_pruned(1);
        metrics.alert_evaluated("a", "alert", false);
        metrics.webhook_message(false, 2);
        metrics.webhook_attempt(true, Some(200), Duration::ZERO);
        metrics.webhook_endpoint_disabled("gone");
        metrics.events_published("api", 1);
        metrics.events_dispatched(1);
        metrics.event_filter_failed("a", "b");
        metrics.project_reloaded("applied");
        metrics.schedule_fires("a", "fired", 1);
        metrics.schedule_lateness(Duration::ZERO);
        metrics.files_taken("a", 1);
        metrics.upkeep();
        let text = metrics.render();
        for metric in ALL {
            assert_eq!(
                ALL.iter().filter(|other| other.name == metric.name).count(),
                1
            );
            assert!(
                text.contains(&format!("# HELP {} {}", metric.name, metric.help)),
                "{} scrapes without its help:\n{text}",
                metric.name
            );
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(204)), "2xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(None), "error");
        assert_eq!(status_class(Some(999)), "error");
    }
}
