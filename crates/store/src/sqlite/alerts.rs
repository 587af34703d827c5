//! The queries behind alerts: what ended in a window, and the recorded alert states.

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use switchboard_core::Timestamp;

use super::insert_execution;
use crate::StoreError;
use crate::records::{AlertChange, AlertState, WindowStats};

/// Counts and the p95 time of the executions of `flows` that ended since `since`.
pub(super) fn window_stats(
    connection: &Connection,
    integration: &str,
    flows: &[String],
    since: Timestamp,
) -> Result<WindowStats, StoreError> {
    if flows.is_empty() {
        return Ok(WindowStats::default());
    }
    let placeholders = vec!["?"; flows.len()].join(", ");
    let scope = format!(
        "FROM executions WHERE integration = ? AND finished_at >= ? AND status IN ('succeeded', 'failed')
           AND flow IN ({placeholders})"
    );
    let mut values: Vec<rusqlite::types::Value> =
        vec![integration.to_owned().into(), since.millis().into()];
    values.extend(flows.iter().map(|flow| flow.clone().into()));
    let (finished, failed): (i64, i64) = connection
        .prepare_cached(&format!(
            "SELECT count(*), coalesce(sum(status = 'failed'), 0) {scope}"
        ))?
        .query_row(params_from_iter(values.iter()), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let finished = u64::try_from(finished).unwrap_or(0);
    let p95_ms = if finished == 0 {
        None
    } else {
        // The nearest-rank 95th percentile: the value at rank ceil(0.95 n).
        let rank = (finished * 95).div_ceil(100);
        values.push(i64::try_from(rank - 1).unwrap_or(0).into());
        connection
            .prepare_cached(&format!(
                "SELECT finished_at - created_at AS took {scope} ORDER BY took LIMIT 1 OFFSET ?"
            ))?
            .query_row(params_from_iter(values.iter()), |row| row.get(0))
            .optional()?
    };
    Ok(WindowStats {
        finished,
        failed: u64::try_from(failed).unwrap_or(0),
        p95_ms,
    })
}

pub(super) fn alert_states(connection: &Connection) -> Result<Vec<AlertState>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT integration, alert, firing, since, summary FROM alert_states ORDER BY integration, alert",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(AlertState {
            integration: row.get(0)?,
            alert: row.get(1)?,
            firing: row.get(2)?,
            since: Timestamp(row.get(3)?),
            summary: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn change_alert(
    connection: &Connection,
    change: &AlertChange,
) -> Result<bool, StoreError> {
    let state = &change.state;
    let recorded: Option<bool> = connection
        .prepare_cached("SELECT firing FROM alert_states WHERE integration = ?1 AND alert = ?2")?
        .query_row(params![state.integration, state.alert], |row| row.get(0))
        .optional()?;
    if recorded.unwrap_or(false) == state.firing {
        return Ok(false);
    }
    connection
        .prepare_cached(
            "INSERT INTO alert_states (integration, alert, firing, since, summary) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (integration, alert) DO UPDATE
               SET firing = excluded.firing, since = excluded.since, summary = excluded.summary",
        )?
        .execute(params![
            state.integration,
            state.alert,
            state.firing,
            state.since.millis(),
            state.summary
        ])?;
    for notification in &change.notifications {
        insert_execution(connection, notification)?;
    }
    Ok(true)
}
