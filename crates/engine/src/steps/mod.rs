//! The step kinds the engine runs, one module each, and how their failures are classified.

mod fail;
mod files;
mod http;
mod log;
mod publish;
mod respond;
pub(crate) mod state;
mod transform;

use std::time::Duration;

use serde_json::Value;
use switchboard_core::ExecutionId;
use switchboard_expr::{EvalError, Limits, Scope};
use switchboard_project::StepKind;
use switchboard_store::bus::{NewEvent, StateChange};
use switchboard_store::{LogLevel, Store};
use switchboard_telemetry::{Metrics, TraceContext};

/// What a step can use while it runs.
pub(crate) struct StepContext<'a> {
    /// The execution it belongs to.
    pub execution: &'a ExecutionId,
    /// The integration of the execution.
    pub integration: &'a str,
    /// The flow of the execution.
    pub flow: &'a str,
    /// Its id.
    pub step: &'a str,
    /// The values its expressions read.
    pub scope: &'a Scope,
    /// The limits of each expression.
    pub limits: &'a Limits,
    /// The HTTP client.
    pub http: &'a reqwest::Client,
    /// The most bytes of a response body that are read.
    pub max_response_body: usize,
    /// Where outbound requests are reported.
    pub metrics: &'a Metrics,
    /// The trace the execution continues.
    pub trace: &'a TraceContext,
    /// The store, for reads of state.
    pub store: &'a dyn Store,
    /// Where `files` steps read and write.
    pub files: &'a dyn switchboard_files::Storage,
    /// The largest file a `files` step reads.
    pub max_file_bytes: u64,
}

/// What a step did.
pub(crate) struct StepOutcome {
    /// What it worked on, for the record.
    pub input: Value,
    /// Its output, or why it failed.
    pub result: Result<Value, StepError>,
    /// What the remote side answered, kept on failure too.
    pub response: Option<Value>,
    /// Lines for the execution's log.
    pub logs: Vec<(LogLevel, String)>,
    /// Events to publish with the step's record.
    pub events: Vec<NewEvent>,
    /// State to change with the step's record.
    pub state: Vec<StateChange>,
}

impl StepOutcome {
    pub(crate) fn new(input: Value, result: Result<Value, StepError>) -> Self {
        Self {
            input,
            result,
            response: None,
            logs: Vec::new(),
            events: Vec::new(),
            state: Vec::new(),
        }
    }
}

/// Runs one step that does one thing; `None` for the kinds the executor runs itself
/// (blocks of steps, `sleep` and `call`).
pub(crate) async fn run(kind: &StepKind, context: &StepContext<'_>) -> Option<StepOutcome> {
    Some(match kind {
        StepKind::Transform(program) => transform::run(program, context),
        StepKind::Http(request) => http::run(request, context).await,
        StepKind::Log(message) => log::run(message, context),
        StepKind::Publish(step) => publish::run(step, context),
        StepKind::State(step) => state::run(step, context).await,
        StepKind::Files(step) => files::run(step, context).await,
        StepKind::Fail(step) => fail::run(step, context),
        StepKind::Respond(step) => respond::run(step, context),
        StepKind::If(_)
        | StepKind::Call(_)
        | StepKind::Switch(_)
        | StepKind::ForEach(_)
        | StepKind::Parallel(_)
        | StepKind::Sleep(_) => return None,
    })
}

/// Why a step failed, classified in one place: whose fault it is and whether trying
/// again can help.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// An expression failed.
    #[error("{what}: {source}")]
    Expression {
        /// Which field's expression.
        what: &'static str,
        /// Why.
        source: EvalError,
    },
    /// The request could not be built from the step's values.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The remote side could not be reached.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The remote side did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The remote side answered with a failing status.
    #[error("{method} {url} answered {status}")]
    Status {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The response body was larger than allowed.
    #[error("the response body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The exchange failed half way.
    #[error("the request failed: {0}")]
    Transport(String),
    /// A value the step computed cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The file system failed (a full disk, a lost mount): it may pass.
    #[error("{0}")]
    FileSystem(String),
    /// The store could not be read.
    #[error("cannot read the store: {0}")]
    Store(String),
    /// A called flow could not start or did not succeed.
    #[error("{message}")]
    Call {
        /// `unknown_flow` or `call_failed`.
        code: String,
        /// What happened.
        message: String,
    },
    /// A `fail` step.
    #[error("{message}")]
    Failed {
        /// The flow's code.
        code: String,
        /// The flow's message.
        message: String,
    },
}

impl StepError {
    /// A stable code for the API and metrics.
    pub fn code(&self) -> &str {
        match self {
            Self::Expression {
                source: EvalError::Timeout(_),
                ..
            } => "expression_timeout",
            Self::Expression { .. } => "expression_failed",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Connect(_) => "http_connect",
            Self::Timeout(_) => "http_timeout",
            Self::Status { .. } => "http_status",
            Self::BodyTooLarge(_) => "http_body_too_large",
            Self::Transport(_) => "http_transport",
            Self::Invalid(_) => "invalid_value",
            Self::FileSystem(_) => "file_system",
            Self::Store(_) => "store_unavailable",
            Self::Failed { code, .. } | Self::Call { code, .. } => code,
        }
    }

    /// Whether trying again can help: the remote side's passing trouble, never the flow's
    /// own mistakes.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_)
            | Self::Timeout(_)
            | Self::Transport(_)
            | Self::Store(_)
            | Self::FileSystem(_) => true,
            Self::Status { status, .. } => matches!(status, 408 | 425 | 429 | 500..=599),
            Self::Expression { .. }
            | Self::InvalidRequest(_)
            | Self::BodyTooLarge(_)
            | Self::Invalid(_)
            | Self::Call { .. }
            | Self::Failed { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_remote_trouble_is_retryable() {
        let status = |status| StepError::Status {
            method: "GET".into(),
            url: "http://x".into(),
            status,
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(StepError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(
            !StepError::Expression {
                what: "transform",
                source: EvalError::NoOutput
            }
            .is_retryable()
        );
    }
}
