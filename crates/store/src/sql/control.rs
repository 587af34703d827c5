//! What an operator does to one execution: retry a failed one, cancel one.

use switchboard_core::{ExecutionId, Timestamp};

use super::{Db, args, ends, parse_status};
use crate::StoreError;
use crate::cluster::Signal;
use crate::records::{Control, ExecutionStatus};

/// The status of an execution, if it exists.
fn status_of(db: &dyn Db, id: &str) -> Result<Option<ExecutionStatus>, StoreError> {
    db.row(
        "SELECT status FROM executions WHERE id = ?1",
        args![id],
        |row| parse_status(&row.text(0)?),
    )
}

pub(super) fn retry_failed(db: &dyn Db, id: &ExecutionId) -> Result<Control, StoreError> {
    match status_of(db, id.as_str())? {
        None => Ok(Control::NotFound),
        Some(ExecutionStatus::Failed) => {
            db.execute(
                "UPDATE executions SET status = 'queued', run_at = ?2, error = NULL, finished_at = NULL,
                    attempts_from_seq = (SELECT COALESCE(MAX(seq) + 1, 0) FROM steps WHERE execution_id = ?1)
                  WHERE id = ?1",
                args![id.as_str(), Timestamp::now().millis()],
            )?;
            db.announce(Signal::Work);
            Ok(Control::Applied)
        }
        Some(other) => Ok(Control::WrongStatus(other)),
    }
}

pub(super) fn cancel(db: &dyn Db, id: &ExecutionId) -> Result<Control, StoreError> {
    match status_of(db, id.as_str())? {
        None => Ok(Control::NotFound),
        Some(ExecutionStatus::Queued | ExecutionStatus::Retrying | ExecutionStatus::Waiting) => {
            mark_cancelled(db, id.as_str())?;
            Ok(Control::Applied)
        }
        Some(ExecutionStatus::Running) => {
            db.execute(
                "UPDATE executions SET cancel_requested = 1 WHERE id = ?1",
                args![id.as_str()],
            )?;
            Ok(Control::CancelRequested)
        }
        Some(other) => Ok(Control::WrongStatus(other)),
    }
}

/// Ends an execution `cancelled`, giving up its lease.
pub(super) fn mark_cancelled(db: &dyn Db, id: &str) -> Result<(), StoreError> {
    db.execute(
        "UPDATE executions SET status = 'cancelled', finished_at = ?2, error = ?3, cancel_requested = 0,
            lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
          WHERE id = ?1",
        args![id, Timestamp::now().millis(), cancelled_error().to_string()],
    )?;
    ends::ended(db, id)
}

/// Ends `cancelled` the executions asked to cancel while they ran that went back to the
/// queue before a checkpoint saw the request (a lost lease, a shutdown), so they do not
/// run again.
pub(super) fn cancel_requeued(db: &dyn Db) -> Result<(), StoreError> {
    let cancelled = db.rows(
        // Runs before every lease: through the index of cancel requests (SQLite's
        // planner would read the whole queue by status otherwise).
        "UPDATE executions INDEXED BY executions_cancel_requested
            SET status = 'cancelled', finished_at = ?1, error = ?2, cancel_requested = 0
          WHERE cancel_requested = 1 AND status IN ('queued', 'retrying', 'waiting')
          RETURNING id",
        args![Timestamp::now().millis(), cancelled_error().to_string()],
        |row| row.text(0),
    )?;
    for id in cancelled {
        ends::ended(db, &id)?;
    }
    Ok(())
}

/// The error a cancelled execution ends with.
fn cancelled_error() -> serde_json::Value {
    serde_json::json!({"code": "cancelled", "message": "cancelled by an operator"})
}
