//! What can go wrong in the store.

use std::path::PathBuf;

use switchboard_core::ExecutionId;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed an operation.
    #[error("database error: {0}")]
    Postgres(#[from] postgres::Error),
    /// The database could not be reached.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// The data folder could not be used.
    #[error("cannot use the data folder {path}: {source}")]
    DataFolder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process has the data folder open.
    #[error("the data folder {0} is in use by another switchboard process")]
    Locked(PathBuf),
    /// The execution's lease is held by someone else now, or it has ended.
    #[error("the lease on execution {0} was lost")]
    LeaseLost(ExecutionId),
    /// A stored value could not be read back.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A batch of writes could not be committed.
    #[error("the write could not be committed: {0}")]
    Commit(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        Self::Corrupt(error.to_string())
    }
}
