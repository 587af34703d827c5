//! Bulk jobs as the store keeps them, so that any node sharing the store can show the
//! progress of a job another node runs.

use switchboard_core::Timestamp;

/// A bulk job's progress, as last saved by the node that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id (`job_…`).
    pub id: String,
    /// What it does: `retry`, `replay` or `resend`.
    pub action: String,
    /// `listing`, `running` or `done`.
    pub state: String,
    /// How many targets it has, once listed.
    pub total: Option<u64>,
    /// How many were handled so far.
    pub processed: u64,
    /// How many were retried, replayed or resent.
    pub applied: u64,
    /// How many were left alone.
    pub skipped: u64,
    /// How many could not be handled.
    pub failed: u64,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// The node that runs it.
    pub node: String,
}
