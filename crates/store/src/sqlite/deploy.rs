//! Deployments on SQLite.

use async_trait::async_trait;
use rusqlite::params;
use switchboard_core::Timestamp;

use super::{SqliteStore, insert_execution};
use crate::StoreError;
use crate::deploy::{DeployStore, Deployment, DeploymentChange};
use crate::records::NewExecution;

#[async_trait]
impl DeployStore for SqliteStore {
    async fn deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        self.readers
            .read(|connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT integration, fingerprint, source FROM deployments ORDER BY integration",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok(Deployment {
                        integration: row.get(0)?,
                        fingerprint: row.get(1)?,
                        source: row.get(2)?,
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn deploy(
        &self,
        changes: Vec<DeploymentChange>,
        executions: Vec<NewExecution>,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                let now = Timestamp::now().millis();
                for change in &changes {
                    match change {
                        DeploymentChange::Deployed(deployment) => {
                            connection
                                .prepare_cached(
                                    "INSERT INTO deployments (integration, fingerprint, source, deployed_at, updated_at)
                                     VALUES (?1, ?2, ?3, ?4, ?4)
                                     ON CONFLICT (integration) DO UPDATE
                                        SET fingerprint = ?2, source = ?3, updated_at = ?4",
                                )?
                                .execute(params![
                                    deployment.integration,
                                    deployment.fingerprint,
                                    deployment.source,
                                    now
                                ])?;
                        }
                        DeploymentChange::Removed(integration) => {
                            connection
                                .prepare_cached("DELETE FROM deployments WHERE integration = ?1")?
                                .execute([integration])?;
                        }
                    }
                }
                for execution in &executions {
                    insert_execution(connection, execution)?;
                }
                Ok(())
            })
            .await
    }
}
