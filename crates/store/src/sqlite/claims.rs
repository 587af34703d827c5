//! File claims on SQLite.

use async_trait::async_trait;
use rusqlite::params;
use switchboard_core::Timestamp;

use super::{SqliteStore, insert_execution, parse_id, parse_status};
use crate::StoreError;
use crate::claims::{ClaimStore, FileClaim};
use crate::records::NewExecution;

#[async_trait]
impl ClaimStore for SqliteStore {
    async fn claim_file(
        &self,
        path: &str,
        size: u64,
        modified_at: Timestamp,
        execution: NewExecution,
    ) -> Result<bool, StoreError> {
        let path = path.to_owned();
        self.writer
            .write(move |connection| {
                let claimed = connection
                    .prepare_cached(
                        "INSERT INTO file_claims (integration, flow, path, size, modified_at, execution_id, claimed_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (integration, flow, path) DO NOTHING",
                    )?
                    .execute(params![
                        execution.integration,
                        execution.flow,
                        path,
                        i64::try_from(size).unwrap_or(i64::MAX),
                        modified_at.millis(),
                        execution.id.as_str(),
                        Timestamp::now().millis()
                    ])?;
                if claimed == 1 {
                    insert_execution(connection, &execution)?;
                }
                Ok(claimed == 1)
            })
            .await
    }

    async fn file_claims(
        &self,
        integration: &str,
        flow: &str,
    ) -> Result<Vec<FileClaim>, StoreError> {
        let (integration, flow) = (integration.to_owned(), flow.to_owned());
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT c.path, c.size, c.modified_at, c.execution_id, e.status
                       FROM file_claims c LEFT JOIN executions e ON e.id = c.execution_id
                      WHERE c.integration = ?1 AND c.flow = ?2
                      ORDER BY c.path",
                )?;
                let rows = statement.query_map([&integration, &flow], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<String>>(4)?,
                    ))
                })?;
                let mut claims = Vec::new();
                for row in rows {
                    let (path, size, modified_at, execution_id, status) = row?;
                    claims.push(FileClaim {
                        path,
                        size: u64::try_from(size).unwrap_or(0),
                        modified_at: Timestamp(modified_at),
                        execution_id: parse_id(&execution_id)?,
                        status: status.as_deref().map(parse_status).transpose()?,
                    });
                }
                Ok(claims)
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
        self.writer
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "DELETE FROM file_claims WHERE integration = ?1 AND flow = ?2 AND path = ?3",
                    )?
                    .execute([&integration, &flow, &path])?;
                Ok(())
            })
            .await
    }
}
