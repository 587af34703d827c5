//! Which runnable executions may start now: the oldest first, each at the head of its
//! ordering sequence, and only while its concurrency group has room and its throttle
//! group has starts left. And debounce: a new execution supersedes the waiting ones of
//! its group.

use std::collections::HashMap;

use switchboard_core::Timestamp;

use super::{Db, Read, Row, args};
use crate::StoreError;
use crate::outbound::DELIVERY_INTEGRATION;
use crate::records::NewExecution;

/// Up to `limit` ids of executions to lease at `now`: of the built-in deliveries
/// (`_webhooks`) when `deliveries`, else of the project's flows.
///
/// An execution with an ordering key waits while an earlier one of its sequence has not
/// ended (queued, running or waiting for a retry), so a failing head holds back its key
/// and only its key. An execution in a concurrency group waits while the group runs as
/// many as its limit, counting those chosen in this batch.
pub(super) fn lease_candidates(
    db: &dyn Db,
    limit: usize,
    deliveries: bool,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // The runnable index, walked in (run_at, id) order, stops at the LIMIT. Left to
    // itself SQLite's planner picks the status index, reads the whole backlog and sorts it:
    // 33 ms a lease with 30,000 queued against 0.04 ms (bench/run, ingest).
    // Full groups are left out by the query; look past those that fill up in this batch.
    let scan = i64::try_from(limit.saturating_mul(4).max(64)).unwrap_or(i64::MAX);
    // Each pool walks its own runnable index: the deliveries' holds only theirs, so a
    // queue full of flows costs the deliveries' lease nothing, and the other way round.
    let (index, pool) = if deliveries {
        (
            "executions_runnable_deliveries",
            format!("e.integration = '{DELIVERY_INTEGRATION}'"),
        )
    } else {
        (
            "executions_runnable",
            format!("e.integration <> '{DELIVERY_INTEGRATION}'"),
        )
    };
    let sql = format!(
        "WITH candidates AS (
           SELECT e.id, e.run_at, e.integration, e.flow, e.concurrency_key, e.concurrency_limit,
                  (SELECT count(*) FROM executions r
                    WHERE r.status = 'running' AND r.integration = e.integration AND r.flow = e.flow
                      AND r.concurrency_key = e.concurrency_key) AS running,
                  e.throttle_key, e.throttle_count,
                  (SELECT count(*) FROM executions t
                    WHERE t.integration = e.integration AND t.flow = e.flow
                      AND t.throttle_key = e.throttle_key
                      AND t.started_at > ?1 - e.throttle_per_ms) AS started
             FROM executions e INDEXED BY {index}
            WHERE e.status IN ('queued', 'retrying', 'waiting') AND e.run_at <= ?1
              AND {pool}
              AND (e.ordering_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM executions o
                     WHERE o.integration = e.integration AND o.flow = e.flow
                       AND o.ordering_key = e.ordering_key AND o.id < e.id
                       AND o.status IN ('queued', 'running', 'retrying', 'waiting'))))
         SELECT id, integration, flow, concurrency_key, concurrency_limit, running,
                throttle_key, throttle_count, started
           FROM candidates
          WHERE (concurrency_limit IS NULL OR running < concurrency_limit)
            AND (throttle_count IS NULL OR started < throttle_count)
          ORDER BY run_at, id
          LIMIT ?2"
    );
    let mut chosen = Vec::new();
    // Per group: (integration, flow, key).
    let mut running_in_batch: HashMap<Group, i64> = HashMap::new();
    let mut started_in_batch: HashMap<Group, i64> = HashMap::new();
    // Rows are read only until enough are chosen: each one costs its group counts.
    db.query(&sql, args![now.millis(), scan], &mut |row| {
        let candidate = Candidate::from_row(row)?;
        let full = |taken: &HashMap<Group, i64>, (group, most, already): &(Group, i64, i64)| {
            already + taken.get(group).copied().unwrap_or(0) >= *most
        };
        let held_back = candidate
            .concurrency
            .as_ref()
            .is_some_and(|group| full(&running_in_batch, group))
            || candidate
                .throttle
                .as_ref()
                .is_some_and(|group| full(&started_in_batch, group));
        if !held_back {
            if let Some((group, _, _)) = candidate.concurrency {
                *running_in_batch.entry(group).or_insert(0) += 1;
            }
            if let Some((group, _, _)) = candidate.throttle {
                *started_in_batch.entry(group).or_insert(0) += 1;
            }
            chosen.push(candidate.id);
        }
        Ok(if chosen.len() >= limit {
            Read::Enough
        } else {
            Read::More
        })
    })?;
    Ok(chosen)
}

/// A flow-control group: integration, flow and key.
type Group = (String, String, String);

/// A runnable execution, with its concurrency group (limit, running) and throttle group
/// (starts allowed, started) when it has them.
struct Candidate {
    id: String,
    concurrency: Option<(Group, i64, i64)>,
    throttle: Option<(Group, i64, i64)>,
}

impl Candidate {
    fn from_row(row: &dyn Row) -> Result<Self, StoreError> {
        let group = |key: Option<String>| -> Result<Group, StoreError> {
            Ok((row.text(1)?, row.text(2)?, key.unwrap_or_default()))
        };
        let concurrency = match row.opt_int(4)? {
            Some(most) => Some((group(row.opt_text(3)?)?, most, row.int(5)?)),
            None => None,
        };
        let throttle = match row.opt_int(7)? {
            Some(most) => Some((group(row.opt_text(6)?)?, most, row.int(8)?)),
            None => None,
        };
        Ok(Self {
            id: row.text(0)?,
            concurrency,
            throttle,
        })
    }
}

/// Cancels the executions of `new`'s debounce group that still wait to start: `new`
/// supersedes them.
pub(super) fn supersede(db: &dyn Db, new: &NewExecution, key: &str) -> Result<(), StoreError> {
    let error = serde_json::json!({
        "code": "debounced",
        "message": format!("superseded by {}, a later execution of its debounce group", new.id),
    });
    db.execute(
        "UPDATE executions SET status = 'cancelled', finished_at = ?5, error = ?6
          WHERE integration = ?1 AND flow = ?2 AND debounce_key = ?3 AND id != ?4
            AND status = 'queued' AND started_at IS NULL",
        args![
            &new.integration,
            &new.flow,
            key,
            new.id.as_str(),
            new.created_at.millis(),
            error.to_string()
        ],
    )?;
    Ok(())
}
