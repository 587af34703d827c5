//! What follows an execution's end, in the transaction that ends it: a parent waiting
//! for it wakes, a synchronous caller that stopped waiting gets its callback queued, and
//! a schedule whose run succeeded remembers it.

use serde_json::json;
use switchboard_core::{ExecutionId, Timestamp};

use super::{Db, args, insert_execution, schedule};
use crate::StoreError;
use crate::outbound::{CALLBACK_FLOW, DELIVERY_INTEGRATION};
use crate::records::NewExecution;

/// Runs what follows the end of execution `id`.
pub(super) fn ended(db: &dyn Db, id: &str) -> Result<(), StoreError> {
    db.execute(
        "UPDATE executions SET run_at = ?2
          WHERE status = 'waiting'
            AND id = (SELECT parent_id FROM executions WHERE id = ?1 AND wakes_parent = 1)",
        args![id, Timestamp::now().millis()],
    )?;
    schedule::succeeded(db, id)?;
    let callback = db
        .row(
            "SELECT callback_url FROM executions WHERE id = ?1",
            args![id],
            |row| row.opt_text(0),
        )?
        .flatten();
    if let Some(url) = callback {
        let callback = NewExecution::new(
            DELIVERY_INTEGRATION,
            CALLBACK_FLOW,
            json!({"kind": "callback", "execution_id": id}),
            json!({"execution_id": id, "url": url}),
        );
        insert_execution(db, &callback)?;
    }
    Ok(())
}

/// Asks for a callback to `url` when execution `id` ends; `false` when it has ended.
pub(super) fn hand_off(db: &dyn Db, id: &str, url: &str) -> Result<bool, StoreError> {
    let changed = db.execute(
        "UPDATE executions SET callback_url = ?2
          WHERE id = ?1 AND status NOT IN ('succeeded', 'failed', 'cancelled')",
        args![id, url],
    )?;
    Ok(changed == 1)
}

/// Whether any of `children` has ended.
pub(super) fn any_ended(db: &dyn Db, children: &[ExecutionId]) -> Result<bool, StoreError> {
    for child in children {
        let ended = db.row(
            "SELECT 1 FROM executions WHERE id = ?1 AND status IN ('succeeded', 'failed', 'cancelled')",
            args![child.as_str()],
            |_| Ok(()),
        )?;
        if ended.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}
