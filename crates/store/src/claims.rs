//! What the store keeps of files taken by `files` triggers: one claim per flow and path,
//! made in the transaction that queues the file's execution, so no crash, restart or
//! second process takes a file twice; it goes once the file has been moved or deleted
//! after its execution ended.

use async_trait::async_trait;
use switchboard_core::{ExecutionId, Timestamp};

use crate::StoreError;
use crate::records::{ExecutionStatus, NewExecution};

/// A file a flow took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileClaim {
    /// The file's path, as the storage names it.
    pub path: String,
    /// Its size when taken.
    pub size: u64,
    /// When it had last been written, when taken.
    pub modified_at: Timestamp,
    /// The execution it started.
    pub execution_id: ExecutionId,
    /// That execution's state; `None` when it is gone.
    pub status: Option<ExecutionStatus>,
}

/// File claims, in the store.
#[async_trait]
pub trait ClaimStore: Send + Sync {
    /// Claims the file at `path` for `execution`'s flow and queues `execution`, in one
    /// transaction; `false` (and nothing queued) when the flow holds a claim on it.
    async fn claim_file(
        &self,
        path: &str,
        size: u64,
        modified_at: Timestamp,
        execution: NewExecution,
    ) -> Result<bool, StoreError>;

    /// The claims of a flow, with their executions' states.
    async fn file_claims(
        &self,
        integration: &str,
        flow: &str,
    ) -> Result<Vec<FileClaim>, StoreError>;

    /// Drops a claim: its file has been moved or deleted.
    async fn release_file(
        &self,
        integration: &str,
        flow: &str,
        path: &str,
    ) -> Result<(), StoreError>;
}
