//! Integration files: what a user writes, and what the engine runs.
//!
//! An integration is one YAML file with `config` variables and `flows`; a folder of them
//! is a [`Project`]. [`load`] reads files and folders, checks everything it can before
//! anything runs (YAML syntax, unknown fields with a suggestion, types, jq syntax,
//! step ids and references, names), and either returns the compiled [`Project`] (every
//! jq expression compiled once) or every [`Problem`] found, each with
//! `file:line:column`.
//!
//! The raw grammar lives in [`spec`] (serde structs whose doc comments are the
//! reference); the compiled form lives in [`model`].

pub mod load;
pub mod model;
mod position;
pub mod schedule;
pub mod spec;

pub use load::{Problem, Problems, compile, load, project_files};
pub use model::{
    AfterFile, Alert, AlertCondition, Backoff, BodyFormat, CallStep, CallTarget, Concurrency,
    ConfigValue, ConfigVar, Debounce, Dedupe, DeployEvent, EventTrigger, FailStep, FileRows,
    FilesAction, FilesStep, FilesTrigger, Flow, ForEachSource, ForEachStep, HmacAlgorithm,
    HmacScheme, HttpBody, HttpStep, IfStep, Integration, Paginate, Project, PublishStep,
    RespondStep, ResponseStatus, RetryPolicy, Sleep, StateAction, StateScope, StateStep, Step,
    StepKind, SwitchStep, SyncAnswer, Throttle, Trigger, Verify, VerifyScheme, WebhookTrigger,
    alert_webhook_flow,
};
pub use schedule::{CatchUp, Overlap, ScheduleTrigger, Timing};
