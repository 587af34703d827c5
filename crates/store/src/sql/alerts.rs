//! The queries behind alerts: what ended in a window, and the recorded alert states.

use switchboard_core::Timestamp;

use super::{Db, Value, args, as_u64, insert_execution};
use crate::StoreError;
use crate::records::{AlertChange, AlertState, WindowStats};

/// Counts and the p95 time of the executions of `flows` that ended since `since`.
pub(super) fn window_stats(
    db: &dyn Db,
    integration: &str,
    flows: &[String],
    since: Timestamp,
) -> Result<WindowStats, StoreError> {
    if flows.is_empty() {
        return Ok(WindowStats::default());
    }
    let placeholders = (3..3 + flows.len())
        .map(|n| format!("?{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let scope = format!(
        "FROM executions WHERE integration = ?1 AND finished_at >= ?2 AND status IN ('succeeded', 'failed')
           AND flow IN ({placeholders})"
    );
    let mut values: Vec<Value<'_>> = vec![integration.into(), since.millis().into()];
    values.extend(flows.iter().map(Value::from));
    let (finished, failed) = db.one(
        &format!("SELECT count(*), count(*) FILTER (WHERE status = 'failed') {scope}"),
        &values,
        |row| Ok((as_u64(row.int(0)?), as_u64(row.int(1)?))),
    )?;
    let p95_ms = if finished == 0 {
        None
    } else {
        // The nearest-rank 95th percentile: the value at rank ceil(0.95 n).
        let rank = (finished * 95).div_ceil(100);
        let offset = format!("?{}", values.len() + 1);
        values.push((rank - 1).into());
        db.row(
            &format!(
                "SELECT finished_at - created_at AS took {scope} ORDER BY took LIMIT 1 OFFSET {offset}"
            ),
            &values,
            |row| row.int(0),
        )?
    };
    Ok(WindowStats {
        finished,
        failed,
        p95_ms,
    })
}

pub(super) fn alert_states(db: &dyn Db) -> Result<Vec<AlertState>, StoreError> {
    db.rows(
        "SELECT integration, alert, firing, since, summary FROM alert_states ORDER BY integration, alert",
        args![],
        |row| {
            Ok(AlertState {
                integration: row.text(0)?,
                alert: row.text(1)?,
                firing: row.flag(2)?,
                since: Timestamp(row.int(3)?),
                summary: row.text(4)?,
            })
        },
    )
}

pub(super) fn change_alert(db: &dyn Db, change: &AlertChange) -> Result<bool, StoreError> {
    let state = &change.state;
    let recorded = db.row(
        "SELECT firing FROM alert_states WHERE integration = ?1 AND alert = ?2",
        args![&state.integration, &state.alert],
        |row| row.flag(0),
    )?;
    if recorded.unwrap_or(false) == state.firing {
        return Ok(false);
    }
    // Changed only when this transaction changes it: of two nodes changing one alert at
    // once, the second finds it changed already and queues no second notice.
    let changed = db.row(
        "INSERT INTO alert_states (integration, alert, firing, since, summary) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (integration, alert) DO UPDATE
           SET firing = excluded.firing, since = excluded.since, summary = excluded.summary
          WHERE alert_states.firing <> excluded.firing
         RETURNING 1",
        args![
            &state.integration,
            &state.alert,
            state.firing,
            state.since.millis(),
            &state.summary
        ],
        |_| Ok(()),
    )?;
    if changed.is_none() {
        return Ok(false);
    }
    for notification in &change.notifications {
        insert_execution(db, notification)?;
    }
    Ok(true)
}
