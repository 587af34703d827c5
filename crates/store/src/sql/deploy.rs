//! The integrations deployed, and the executions their changes queue.

use async_trait::async_trait;
use switchboard_core::Timestamp;

use super::{Backend, SqlStore, args, insert_execution};
use crate::StoreError;
use crate::deploy::{DeployStore, Deployment, DeploymentChange};
use crate::records::NewExecution;

#[async_trait]
impl<B: Backend> DeployStore for SqlStore<B> {
    async fn deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        self.backend
            .read(|db| {
                db.rows(
                    "SELECT integration, fingerprint, source FROM deployments ORDER BY integration",
                    args![],
                    |row| {
                        Ok(Deployment {
                            integration: row.text(0)?,
                            fingerprint: row.text(1)?,
                            source: row.text(2)?,
                        })
                    },
                )
            })
            .await
    }

    async fn deploy(
        &self,
        changes: Vec<DeploymentChange>,
        executions: Vec<NewExecution>,
    ) -> Result<(), StoreError> {
        self.backend
            .write(move |db| {
                let now = Timestamp::now().millis();
                let mut applied = 0;
                for change in &changes {
                    match change {
                        DeploymentChange::Deployed(deployment) => {
                            applied += db.execute(
                                "INSERT INTO deployments (integration, fingerprint, source, deployed_at, updated_at)
                                 VALUES (?1, ?2, ?3, ?4, ?4)
                                 ON CONFLICT (integration) DO UPDATE
                                    SET fingerprint = ?2, source = ?3, updated_at = ?4
                                  WHERE deployments.fingerprint <> ?2",
                                args![
                                    &deployment.integration,
                                    &deployment.fingerprint,
                                    &deployment.source,
                                    now
                                ],
                            )?;
                        }
                        DeploymentChange::Removed(integration) => {
                            applied += db.execute(
                                "DELETE FROM deployments WHERE integration = ?1",
                                args![integration],
                            )?;
                        }
                    }
                }
                if applied == 0 && !changes.is_empty() {
                    // Another node sharing the store deployed these changes first, and
                    // queued their flows.
                    return Ok(());
                }
                for execution in &executions {
                    insert_execution(db, execution)?;
                }
                Ok(())
            })
            .await
    }
}
