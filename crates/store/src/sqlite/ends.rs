//! What follows an execution's end, in the transaction that ends it: a parent waiting
//! for it wakes, a synchronous caller that stopped waiting gets its callback queued, and
//! a schedule whose run succeeded remembers it.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use switchboard_core::{ExecutionId, Timestamp};

use super::{insert_execution, schedule};
use crate::StoreError;
use crate::outbound::{CALLBACK_FLOW, DELIVERY_INTEGRATION};
use crate::records::NewExecution;

/// Runs what follows the end of execution `id`.
pub(super) fn ended(connection: &Connection, id: &str) -> Result<(), StoreError> {
    let now = Timestamp::now().millis();
    connection
        .prepare_cached(
            "UPDATE executions SET run_at = ?2
              WHERE status = 'waiting'
                AND id = (SELECT parent_id FROM executions WHERE id = ?1 AND wakes_parent = 1)",
        )?
        .execute(params![id, now])?;
    schedule::succeeded(connection, id)?;
    let callback: Option<String> = connection
        .prepare_cached("SELECT callback_url FROM executions WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .flatten();
    if let Some(url) = callback {
        let callback = NewExecution::new(
            DELIVERY_INTEGRATION,
            CALLBACK_FLOW,
            json!({"kind": "callback", "execution_id": id}),
            json!({"execution_id": id, "url": url}),
        );
        insert_execution(connection, &callback)?;
    }
    Ok(())
}

/// Asks for a callback to `url` when execution `id` ends; `false` when it has ended.
pub(super) fn hand_off(connection: &Connection, id: &str, url: &str) -> Result<bool, StoreError> {
    let changed = connection
        .prepare_cached(
            "UPDATE executions SET callback_url = ?2
              WHERE id = ?1 AND status NOT IN ('succeeded', 'failed', 'cancelled')",
        )?
        .execute(params![id, url])?;
    Ok(changed == 1)
}

/// Whether any of `children` has ended.
pub(super) fn any_ended(
    connection: &Connection,
    children: &[ExecutionId],
) -> Result<bool, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT 1 FROM executions WHERE id = ?1 AND status IN ('succeeded', 'failed', 'cancelled')",
    )?;
    for child in children {
        if statement.exists([child.as_str()])? {
            return Ok(true);
        }
    }
    Ok(false)
}
