//! Which runnable executions may start now: the oldest first, each at the head of its
//! ordering sequence, and only while its concurrency group has room.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use switchboard_core::Timestamp;

use crate::StoreError;

/// Up to `limit` ids of executions to lease at `now`.
///
/// An execution with an ordering key waits while an earlier one of its sequence has not
/// ended (queued, running or waiting for a retry), so a failing head holds back its key
/// and only its key. An execution in a concurrency group waits while the group runs as
/// many as its limit, counting those chosen in this batch.
pub(super) fn lease_candidates(
    connection: &Connection,
    limit: usize,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    // Look past candidates that a full concurrency group turns away.
    let scan = i64::try_from(limit.saturating_mul(4).max(64)).unwrap_or(i64::MAX);
    let mut statement = connection.prepare_cached(
        "SELECT e.id, e.integration, e.flow, e.concurrency_key, e.concurrency_limit,
                (SELECT count(*) FROM executions r
                  WHERE r.status = 'running' AND r.integration = e.integration AND r.flow = e.flow
                    AND r.concurrency_key = e.concurrency_key)
           FROM executions e
          WHERE e.status IN ('queued', 'retrying') AND e.run_at <= ?1
            AND (e.ordering_key IS NULL OR NOT EXISTS (
                  SELECT 1 FROM executions o
                   WHERE o.integration = e.integration AND o.flow = e.flow
                     AND o.ordering_key = e.ordering_key AND o.id < e.id
                     AND o.status IN ('queued', 'running', 'retrying')))
          ORDER BY e.run_at, e.id
          LIMIT ?2",
    )?;
    let mut rows = statement.query(params![now.millis(), scan])?;
    let mut chosen = Vec::new();
    let mut taken: HashMap<(String, String, String), i64> = HashMap::new();
    while let Some(row) = rows.next()? {
        if chosen.len() >= limit {
            break;
        }
        let id: String = row.get(0)?;
        let group_limit: Option<i64> = row.get(4)?;
        if let Some(group_limit) = group_limit {
            let group = (
                row.get(1)?,
                row.get(2)?,
                row.get::<_, Option<String>>(3)?.unwrap_or_default(),
            );
            let running: i64 = row.get(5)?;
            let in_batch = taken.entry(group).or_insert(0);
            if running + *in_batch >= group_limit {
                continue;
            }
            *in_batch += 1;
        }
        chosen.push(id);
    }
    Ok(chosen)
}
