//! What an operator does to one execution: retry a failed one, cancel one.

use rusqlite::{Connection, OptionalExtension, params};
use switchboard_core::{ExecutionId, Timestamp};

use super::parse_status;
use crate::StoreError;
use crate::records::{Control, ExecutionStatus};

/// The status of an execution, if it exists.
fn status_of(connection: &Connection, id: &str) -> Result<Option<ExecutionStatus>, StoreError> {
    connection
        .prepare_cached("SELECT status FROM executions WHERE id = ?1")?
        .query_row([id], |row| row.get::<_, String>(0))
        .optional()?
        .map(|status| parse_status(&status))
        .transpose()
}

pub(super) fn retry_failed(
    connection: &Connection,
    id: &ExecutionId,
) -> Result<Control, StoreError> {
    match status_of(connection, id.as_str())? {
        None => Ok(Control::NotFound),
        Some(ExecutionStatus::Failed) => {
            connection
                .prepare_cached(
                    "UPDATE executions SET status = 'queued', run_at = ?2, error = NULL, finished_at = NULL,
                        attempts_from_seq = (SELECT COALESCE(MAX(seq) + 1, 0) FROM steps WHERE execution_id = ?1)
                      WHERE id = ?1",
                )?
                .execute(params![id.as_str(), Timestamp::now().millis()])?;
            Ok(Control::Applied)
        }
        Some(other) => Ok(Control::WrongStatus(other)),
    }
}

pub(super) fn cancel(connection: &Connection, id: &ExecutionId) -> Result<Control, StoreError> {
    match status_of(connection, id.as_str())? {
        None => Ok(Control::NotFound),
        Some(ExecutionStatus::Queued | ExecutionStatus::Retrying | ExecutionStatus::Waiting) => {
            mark_cancelled(connection, id.as_str())?;
            Ok(Control::Applied)
        }
        Some(ExecutionStatus::Running) => {
            connection
                .prepare_cached("UPDATE executions SET cancel_requested = 1 WHERE id = ?1")?
                .execute([id.as_str()])?;
            Ok(Control::CancelRequested)
        }
        Some(other) => Ok(Control::WrongStatus(other)),
    }
}

/// Ends an execution `cancelled`, giving up its lease.
pub(super) fn mark_cancelled(connection: &Connection, id: &str) -> Result<(), StoreError> {
    let error = cancelled_error();
    connection
        .prepare_cached(
            "UPDATE executions SET status = 'cancelled', finished_at = ?2, error = ?3, cancel_requested = 0,
                lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
              WHERE id = ?1",
        )?
        .execute(params![id, Timestamp::now().millis(), error.to_string()])?;
    super::ends::ended(connection, id)
}

/// Ends `cancelled` the executions asked to cancel while they ran that went back to the
/// queue before a checkpoint saw the request (a lost lease, a shutdown), so they do not
/// run again.
pub(super) fn cancel_requeued(connection: &Connection) -> Result<(), StoreError> {
    let error = cancelled_error();
    let cancelled: Vec<String> = connection
        .prepare_cached(
            // Runs before every lease: through the index of cancel requests (the planner
            // would read the whole queue by status otherwise).
            "UPDATE executions INDEXED BY executions_cancel_requested
                SET status = 'cancelled', finished_at = ?1, error = ?2, cancel_requested = 0
              WHERE cancel_requested = 1 AND status IN ('queued', 'retrying', 'waiting')
              RETURNING id",
        )?
        .query_map(
            params![Timestamp::now().millis(), error.to_string()],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    for id in cancelled {
        super::ends::ended(connection, &id)?;
    }
    Ok(())
}

/// The error a cancelled execution ends with.
fn cancelled_error() -> serde_json::Value {
    serde_json::json!({"code": "cancelled", "message": "cancelled by an operator"})
}
