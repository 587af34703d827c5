//! What Switchboard reports about itself.
//!
//! - [`Metrics`]: every Prometheus metric, named once in [`names`], updated through one
//!   method per event so that the call sits next to the state change it reports.
//! - [`TraceContext`]: the W3C `traceparent` that an execution carries from the webhook
//!   that started it to the requests its `http` steps send.
//! - [`otel`]: OpenTelemetry export of the spans, behind the `otel` cargo feature.

pub mod metrics;
pub mod otel;
mod trace_context;

pub use metrics::{Metrics, names};
pub use trace_context::TraceContext;
