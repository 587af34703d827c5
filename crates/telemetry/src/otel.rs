//! OpenTelemetry export of the `tracing` spans (OTLP over HTTP), behind the `otel` cargo
//! feature. Without the feature every function here is a no-op, so callers need no
//! `cfg` of their own.
//!
//! With an exporter running, an execution's span continues the trace of its webhook's
//! `traceparent` (its parent is the caller's span), and an `http` step sends its own
//! exported span as the parent in the `traceparent` it sends.

use crate::TraceContext;

/// Whether this build can export traces.
pub const AVAILABLE: bool = cfg!(feature = "otel");

/// Makes `span` continue `inbound` (when given) and returns the trace context `span` is
/// exported with; `None` when nothing is exported.
pub fn attach(span: &tracing::Span, inbound: Option<&TraceContext>) -> Option<TraceContext> {
    #[cfg(feature = "otel")]
    {
        enabled::attach(span, inbound)
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = (span, inbound);
        None
    }
}

/// The trace context of the current span as exported; `None` when nothing is exported.
pub fn current() -> Option<TraceContext> {
    #[cfg(feature = "otel")]
    {
        enabled::context_of(&tracing::Span::current())
    }
    #[cfg(not(feature = "otel"))]
    {
        None
    }
}

#[cfg(feature = "otel")]
pub use enabled::{Exporter, ExporterError};

#[cfg(feature = "otel")]
mod enabled {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
    };
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
    use tracing::Subscriber;
    use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
    use tracing_subscriber::registry::LookupSpan;

    use crate::TraceContext;

    /// The OTLP exporter could not be built.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot export traces to {endpoint}: {message}")]
    pub struct ExporterError {
        endpoint: String,
        message: String,
    }

    /// A running OTLP exporter; [`Exporter::shutdown`] sends what is left.
    pub struct Exporter {
        provider: SdkTracerProvider,
    }

    impl Exporter {
        /// Exports spans in batches to `endpoint`, an OTLP/HTTP base URL (`/v1/traces`
        /// is added unless the URL ends with it).
        pub fn start(endpoint: &str) -> Result<Self, ExporterError> {
            let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
                endpoint.to_owned()
            } else {
                format!("{}/v1/traces", endpoint.trim_end_matches('/'))
            };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url)
                .build()
                .map_err(|error| ExporterError {
                    endpoint: endpoint.to_owned(),
                    message: error.to_string(),
                })?;
            let resource = Resource::builder().with_service_name("switchboard").build();
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            Ok(Self { provider })
        }

        /// The `tracing` layer that hands spans to this exporter.
        pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
        where
            S: Subscriber + for<'span> LookupSpan<'span>,
        {
            tracing_opentelemetry::layer().with_tracer(self.provider.tracer("switchboard"))
        }

        /// Sends the spans not yet sent and stops.
        pub fn shutdown(self) {
            if let Err(error) = self.provider.shutdown() {
                tracing::warn!(%error, "Could not send the last spans.");
            }
        }
    }

    pub(super) fn attach(
        span: &tracing::Span,
        inbound: Option<&TraceContext>,
    ) -> Option<TraceContext> {
        if let Some(inbound) = inbound {
            let remote = SpanContext::new(
                TraceId::from_bytes(inbound.trace_id_bytes()),
                SpanId::from_bytes(inbound.parent_id_bytes()),
                TraceFlags::new(inbound.flags()),
                true,
                TraceState::default(),
            );
            let parent = opentelemetry::Context::new().with_remote_span_context(remote);
            // Fails only when no OpenTelemetry layer is installed: nothing is exported then.
            let _ = span.set_parent(parent);
        }
        context_of(span)
    }

    pub(super) fn context_of(span: &tracing::Span) -> Option<TraceContext> {
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then(|| {
            TraceContext::from_parts(
                span_context.trace_id().to_bytes(),
                span_context.span_id().to_bytes(),
                span_context.trace_flags().to_u8(),
            )
        })
    }
}
