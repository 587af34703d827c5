//! What the store keeps of deployments: the version of each integration last deployed,
//! changed together with the `deploy` executions a change starts.

use async_trait::async_trait;

use crate::StoreError;
use crate::records::NewExecution;

/// The version of an integration last deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The integration.
    pub integration: String,
    /// Its fingerprint then.
    pub fingerprint: String,
    /// Its file's text then.
    pub source: String,
}

/// A change of the deployed versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentChange {
    /// An integration deployed for the first time, or changed.
    Deployed(Deployment),
    /// An integration removed.
    Removed(String),
}

/// Deployments, in the store.
#[async_trait]
pub trait DeployStore: Send + Sync {
    /// Every integration deployed, by name.
    async fn deployments(&self) -> Result<Vec<Deployment>, StoreError>;

    /// Records `changes` and queues `executions` (the `deploy` flows they start) in one
    /// transaction.
    async fn deploy(
        &self,
        changes: Vec<DeploymentChange>,
        executions: Vec<NewExecution>,
    ) -> Result<(), StoreError>;
}
