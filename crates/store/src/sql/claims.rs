//! Files taken by `files` triggers.

use async_trait::async_trait;
use switchboard_core::Timestamp;

use super::{Backend, SqlStore, args, as_u64, insert_execution, parse_id, parse_status};
use crate::StoreError;
use crate::claims::{ClaimStore, FileClaim};
use crate::records::NewExecution;

#[async_trait]
impl<B: Backend> ClaimStore for SqlStore<B> {
    async fn claim_file(
        &self,
        path: &str,
        size: u64,
        modified_at: Timestamp,
        execution: NewExecution,
    ) -> Result<bool, StoreError> {
        let path = path.to_owned();
        self.backend
            .write(move |db| {
                let claimed = db.execute(
                    "INSERT INTO file_claims (integration, flow, path, size, modified_at, execution_id, claimed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (integration, flow, path) DO NOTHING",
                    args![
                        &execution.integration,
                        &execution.flow,
                        &path,
                        size,
                        modified_at.millis(),
                        execution.id.as_str(),
                        Timestamp::now().millis()
                    ],
                )? == 1;
                if claimed {
                    insert_execution(db, &execution)?;
                }
                Ok(claimed)
            })
            .await
    }

    async fn file_claims(
        &self,
        integration: &str,
        flow: &str,
    ) -> Result<Vec<FileClaim>, StoreError> {
        let (integration, flow) = (integration.to_owned(), flow.to_owned());
        self.backend
            .read(move |db| {
                db.rows(
                    "SELECT c.path, c.size, c.modified_at, c.execution_id, e.status
                       FROM file_claims c LEFT JOIN executions e ON e.id = c.execution_id
                      WHERE c.integration = ?1 AND c.flow = ?2
                      ORDER BY c.path",
                    args![&integration, &flow],
                    |row| {
                        Ok(FileClaim {
                            path: row.text(0)?,
                            size: as_u64(row.int(1)?),
                            modified_at: Timestamp(row.int(2)?),
                            execution_id: parse_id(&row.text(3)?)?,
                            status: row.opt_text(4)?.as_deref().map(parse_status).transpose()?,
                        })
                    },
                )
            })
            .await
    }

    async fn release_file(
        &self,
        integration: &str,
        flow: &str,
        path: &str,
    ) -> Result<(), StoreError> {
        let (integration, flow, path) = (integration.to_owned(), flow.to_owned(), path.to_owned());
        self.backend
            .write(move |db| {
                db.execute(
                    "DELETE FROM file_claims WHERE integration = ?1 AND flow = ?2 AND path = ?3",
                    args![&integration, &flow, &path],
                )?;
                Ok(())
            })
            .await
    }
}
