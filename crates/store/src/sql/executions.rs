//! Executions: acceptance, leases, checkpoints, the queue, retention.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value as Json;
use switchboard_core::ids::{LeaseToken, NodeId};
use switchboard_core::{ExecutionId, Timestamp};

use super::{
    Backend, Db, Row, Serial, SqlStore, Value, alerts, args, as_u32, as_u64, bus, cluster, control,
    ends, error_text, flow_control, jobs, json_text, millis, parse_error, parse_id, parse_status,
};
use crate::cluster::{Cluster, Heartbeat, NodeRecord, Signal};
use crate::jobs::JobRecord;
use crate::records::{
    AlertChange, AlertState, Checkpoint, Checkpointed, Control, End, Enqueued, ExecutionDetail,
    ExecutionFilter, ExecutionStatus, ExecutionSummary, LeasedExecution, LogRecord, NewExecution,
    Outcome, Page, Pruned, QueuedFlow, Slots, StepRecord, StepStatus, WindowStats,
};
use crate::{Store, StoreError};

const SUMMARY_COLUMNS: &str = "id, integration, flow, status, attempt, created_at, started_at, finished_at, error, run_at, replay_of, parent_id";

fn summary_from_row(row: &dyn Row) -> Result<ExecutionSummary, StoreError> {
    let status = parse_status(&row.text(3)?)?;
    let run_at = || row.int(9).map(Timestamp);
    Ok(ExecutionSummary {
        id: parse_id(&row.text(0)?)?,
        integration: row.text(1)?,
        flow: row.text(2)?,
        status,
        replay_of: row.opt_text(10)?.map(|id| parse_id(&id)).transpose()?,
        parent_id: row.opt_text(11)?.map(|id| parse_id(&id)).transpose()?,
        next_attempt_at: (status == ExecutionStatus::Retrying)
            .then(run_at)
            .transpose()?,
        resumes_at: (status == ExecutionStatus::Waiting)
            .then(run_at)
            .transpose()?,
        attempt: as_u32(row.int(4)?),
        created_at: Timestamp(row.int(5)?),
        started_at: row.opt_int(6)?.map(Timestamp),
        finished_at: row.opt_int(7)?.map(Timestamp),
        error: parse_error(row.opt_text(8)?)?,
    })
}

const STEP_COLUMNS: &str =
    "seq, step_id, kind, attempt, status, input, output, error, started_at, finished_at";

fn step_from_row(row: &dyn Row) -> Result<StepRecord, StoreError> {
    let status = match row.text(4)?.as_str() {
        "succeeded" => StepStatus::Succeeded,
        "skipped" => StepStatus::Skipped,
        "waiting" => StepStatus::Waiting,
        _ => StepStatus::Failed,
    };
    let started_at = row.int(8)?;
    let finished_at = row.int(9)?;
    Ok(StepRecord {
        seq: as_u32(row.int(0)?),
        step_id: row.text(1)?,
        kind: row.text(2)?,
        attempt: as_u32(row.int(3)?),
        status,
        input: row.json(5)?,
        output: row.opt_json(6)?,
        error: parse_error(row.opt_text(7)?)?,
        started_at: Timestamp(started_at),
        finished_at: Timestamp(finished_at),
        duration_ms: finished_at - started_at,
    })
}

fn steps_of(db: &dyn Db, id: &str, only_succeeded: bool) -> Result<Vec<StepRecord>, StoreError> {
    let filter = if only_succeeded {
        "AND status IN ('succeeded', 'skipped', 'waiting')"
    } else {
        ""
    };
    let sql =
        format!("SELECT {STEP_COLUMNS} FROM steps WHERE execution_id = ?1 {filter} ORDER BY seq");
    db.rows(&sql, args![id], step_from_row)
}

/// How many failed attempts each step of an execution has had.
fn failed_attempts(db: &dyn Db, id: &str) -> Result<BTreeMap<String, u32>, StoreError> {
    Ok(db
        .rows(
            "SELECT step_id, count(*) FROM steps WHERE execution_id = ?1 AND status = 'failed'
                AND seq >= (SELECT attempts_from_seq FROM executions WHERE id = ?1)
              GROUP BY step_id",
            args![id],
            |row| Ok((row.text(0)?, as_u32(row.int(1)?))),
        )?
        .into_iter()
        .collect())
}

fn next_seq(db: &dyn Db, table: &str, id: &str) -> Result<u32, StoreError> {
    let sql = format!("SELECT COALESCE(MAX(seq) + 1, 0) FROM {table} WHERE execution_id = ?1");
    Ok(as_u32(db.one(&sql, args![id], |row| row.int(0))?))
}

/// The execution holding `new`'s dedupe key, if a live one does; otherwise the key is
/// taken for `new` (its execution must be inserted in the same transaction).
///
/// One statement takes the key when it is free or expired, so two nodes accepting the
/// same key at once cannot both take it: the second waits for the first's row and finds
/// it live.
fn dedupe_holder(db: &dyn Db, new: &NewExecution) -> Result<Option<ExecutionId>, StoreError> {
    let Some(dedupe) = &new.dedupe else {
        return Ok(None);
    };
    let taken = db.row(
        "INSERT INTO dedupe_keys (integration, flow, key, execution_id, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (integration, flow, key) DO UPDATE
            SET execution_id = excluded.execution_id, expires_at = excluded.expires_at
          WHERE dedupe_keys.expires_at <= ?6
         RETURNING execution_id",
        args![
            &new.integration,
            &new.flow,
            &dedupe.key,
            new.id.as_str(),
            dedupe.expires_at.millis(),
            new.created_at.millis()
        ],
        |row| row.text(0),
    )?;
    if taken.is_some() {
        return Ok(None);
    }
    let holder = db.one(
        "SELECT execution_id FROM dedupe_keys WHERE integration = ?1 AND flow = ?2 AND key = ?3",
        args![&new.integration, &new.flow, &dedupe.key],
        |row| row.text(0),
    )?;
    Ok(Some(parse_id(&holder)?))
}

/// Queues a new execution, runnable at once (or at its `not_before`).
pub(crate) fn insert_execution(db: &dyn Db, new: &NewExecution) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO executions (id, integration, flow, status, created_at, run_at,
            replay_of, concurrency_key, concurrency_limit, ordering_key, debounce_key,
            throttle_key, throttle_count, throttle_per_ms, parent_id, wakes_parent, scheduled_at)
         VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        args![
            new.id.as_str(),
            &new.integration,
            &new.flow,
            new.created_at.millis(),
            new.not_before.unwrap_or(new.created_at).millis(),
            new.replay_of.as_ref().map(ExecutionId::as_str),
            new.concurrency.as_ref().map(|group| group.key.as_str()),
            new.concurrency.as_ref().map(|group| group.limit),
            new.ordering_key.as_deref(),
            new.debounce_key.as_deref(),
            new.throttle.as_ref().map(|group| group.key.as_str()),
            new.throttle.as_ref().map(|group| group.count),
            new.throttle.as_ref().map(|group| millis(group.per)),
            new.parent.as_ref().map(|parent| parent.id.as_str()),
            new.parent.as_ref().is_some_and(|parent| parent.waits),
            new.scheduled_at.map(Timestamp::millis),
        ],
    )?;
    db.execute(
        "INSERT INTO execution_payloads (execution_id, trigger, input) VALUES (?1, ?2, ?3)",
        args![
            new.id.as_str(),
            json_text(&new.trigger),
            json_text(&new.input)
        ],
    )?;
    if let Some(key) = &new.debounce_key {
        flow_control::supersede(db, new, key)?;
    }
    db.announce(Signal::Work);
    Ok(())
}

fn lease_batch(
    db: &dyn Db,
    node: &NodeId,
    slots: Slots,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<Vec<LeasedExecution>, StoreError> {
    db.serialize(Serial::Lease)?;
    control::cancel_requeued(db)?;
    let mut chosen = flow_control::lease_candidates(db, slots.flows, false, now)?;
    chosen.extend(flow_control::lease_candidates(
        db,
        slots.deliveries,
        true,
        now,
    )?);
    let lease = LeaseToken::generate();
    let mut leased = Vec::new();
    for id in &chosen {
        let taken = db.row(
            "UPDATE executions
                SET status = 'running', attempt = attempt + 1, lease_token = ?1, lease_owner = ?2,
                    lease_expires_at = ?3, started_at = COALESCE(started_at, ?4)
                  WHERE id = ?5 AND status IN ('queued', 'retrying', 'waiting')
          RETURNING id, integration, flow, attempt, created_at",
            args![
                lease.as_str(),
                node.as_str(),
                expires_at.millis(),
                now.millis(),
                id.as_str()
            ],
            |row| {
                Ok(LeasedExecution {
                    id: parse_id(&row.text(0)?)?,
                    lease: lease.clone(),
                    integration: row.text(1)?,
                    flow: row.text(2)?,
                    trigger: Json::Null,
                    input: Json::Null,
                    attempt: as_u32(row.int(3)?),
                    created_at: Timestamp(row.int(4)?),
                    failed_attempts: BTreeMap::new(),
                    finished_steps: Vec::new(),
                    next_step_seq: 0,
                    next_log_seq: 0,
                })
            },
        )?;
        leased.extend(taken);
    }
    leased.sort_by(|a, b| a.id.cmp(&b.id));
    for execution in &mut leased {
        let id = execution.id.as_str();
        (execution.trigger, execution.input) = payload(db, id)?;
        if execution.attempt == 1 {
            // Its first lease: nothing of it is recorded yet.
            continue;
        }
        execution.finished_steps = steps_of(db, id, true)?;
        execution.failed_attempts = failed_attempts(db, id)?;
        execution.next_step_seq = next_seq(db, "steps", id)?;
        execution.next_log_seq = next_seq(db, "execution_logs", id)?;
    }
    Ok(leased)
}

/// An execution's trigger and input.
fn payload(db: &dyn Db, id: &str) -> Result<(Json, Json), StoreError> {
    db.one(
        "SELECT trigger, input FROM execution_payloads WHERE execution_id = ?1",
        args![id],
        |row| Ok((row.json(0)?, row.json(1)?)),
    )
}

fn write_checkpoint(db: &dyn Db, checkpoint: &Checkpoint) -> Result<Checkpointed, StoreError> {
    let id = checkpoint.execution.as_str();
    let cancel_requested = db.row(
        "SELECT cancel_requested FROM executions WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
        args![id, checkpoint.lease.as_str()],
        |row| row.flag(0),
    )?;
    let Some(cancel_requested) = cancel_requested else {
        return Err(StoreError::LeaseLost(checkpoint.execution.clone()));
    };
    for step in &checkpoint.steps {
        db.execute(
            "INSERT INTO steps (execution_id, seq, step_id, kind, status, attempt, input, output, error, started_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (execution_id, seq) DO UPDATE
                SET step_id = excluded.step_id, kind = excluded.kind, status = excluded.status,
                    attempt = excluded.attempt, input = excluded.input, output = excluded.output,
                    error = excluded.error, started_at = excluded.started_at, finished_at = excluded.finished_at",
            args![
                id,
                step.seq,
                &step.step_id,
                &step.kind,
                step.status.as_str(),
                step.attempt,
                json_text(&step.input),
                step.output.as_ref().map(json_text),
                error_text(step.error.as_ref())?,
                step.started_at.millis(),
                step.finished_at.millis(),
            ],
        )?;
    }
    for line in &checkpoint.logs {
        db.execute(
            "INSERT INTO execution_logs (execution_id, seq, at, level, step_id, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (execution_id, seq) DO UPDATE
                SET at = excluded.at, level = excluded.level, step_id = excluded.step_id, message = excluded.message",
            args![
                id,
                line.seq,
                line.at.millis(),
                line.level.as_str(),
                line.step.as_deref(),
                &line.message
            ],
        )?;
    }
    match &checkpoint.end {
        // An execution that reached its end keeps that end, even if a cancel came late.
        None | Some(End::Retry { .. } | End::Wait { .. }) if cancel_requested => {
            control::mark_cancelled(db, id)?;
            return Ok(Checkpointed::Cancelled);
        }
        None => {}
        Some(End::Finished(finish)) => {
            db.execute(
                "UPDATE executions SET status = ?2, error = ?3, finished_at = ?4, output = ?5,
                    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                  WHERE id = ?1",
                args![
                    id,
                    finish.status.as_str(),
                    error_text(finish.error.as_ref())?,
                    Timestamp::now().millis(),
                    finish.output.as_ref().map(json_text),
                ],
            )?;
        }
        Some(End::Retry { at, error }) => {
            db.execute(
                "UPDATE executions SET status = 'retrying', run_at = ?2, error = ?3,
                    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                  WHERE id = ?1",
                args![id, at.millis(), serde_json::to_string(error)?],
            )?;
        }
        Some(End::Wait { at, awaiting }) => {
            // A child that ended before this commit found its parent still running, so
            // it could not wake it: the parent wakes at once instead.
            let at = if ends::any_ended(db, awaiting)? {
                Timestamp::now()
            } else {
                *at
            };
            db.execute(
                "UPDATE executions SET status = 'waiting', run_at = ?2, error = NULL,
                    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                  WHERE id = ?1",
                args![id, at.millis()],
            )?;
        }
    }
    if checkpoint.end.is_some() {
        // Its end may let another start elsewhere: the next of its ordering sequence,
        // one waiting for room in its group, or its waiting parent.
        db.announce(Signal::Work);
    }
    if let Some(response) = &checkpoint.response {
        db.execute(
            "UPDATE executions SET response = COALESCE(response, ?2) WHERE id = ?1",
            args![id, json_text(response)],
        )?;
    }
    bus::append_events(db, &checkpoint.events)?;
    bus::change_state(db, &checkpoint.state)?;
    for follow_up in &checkpoint.follow_ups {
        insert_execution(db, follow_up)?;
    }
    if let Some(End::Finished(_)) = &checkpoint.end {
        ends::ended(db, id)?;
    }
    Ok(Checkpointed::Saved)
}

/// Puts `running` executions back in the queue: those whose lease expired before
/// `expired_before`, or (with `owner_other_than`) those leased by another process.
fn requeue(db: &dyn Db, condition: &str, value: Value<'_>) -> Result<u64, StoreError> {
    let requeued = db.execute(
        &format!(
            "UPDATE executions SET status = 'queued', lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
              WHERE status = 'running' AND {condition}"
        ),
        &[value],
    )?;
    if requeued > 0 {
        db.announce(Signal::Work);
    }
    Ok(requeued)
}

fn execution_detail(db: &dyn Db, id: &str) -> Result<Option<ExecutionDetail>, StoreError> {
    let sql = format!("SELECT {SUMMARY_COLUMNS}, output, response FROM executions WHERE id = ?1");
    let found = db.row(&sql, args![id], |row| {
        Ok((summary_from_row(row)?, row.opt_json(12)?, row.opt_json(13)?))
    })?;
    let Some((summary, output, response)) = found else {
        return Ok(None);
    };
    let (trigger, input) = payload(db, id)?;
    let steps = steps_of(db, id, false)?;
    let log = db.rows(
        "SELECT seq, at, level, step_id, message FROM execution_logs WHERE execution_id = ?1 ORDER BY seq",
        args![id],
        |row| {
            Ok(LogRecord::from_row(
                as_u32(row.int(0)?),
                row.int(1)?,
                &row.text(2)?,
                row.opt_text(3)?,
                row.text(4)?,
            ))
        },
    )?;
    Ok(Some(ExecutionDetail {
        summary,
        trigger,
        input,
        output,
        response,
        steps,
        log,
    }))
}

fn list_executions(
    db: &dyn Db,
    filter: ExecutionFilter,
    limit: usize,
    cursor: Option<ExecutionId>,
) -> Result<Page<ExecutionSummary>, StoreError> {
    let mut conditions = Vec::new();
    let mut values: Vec<Value<'static>> = Vec::new();
    let mut condition = |sql: &str, value: Value<'static>| {
        values.push(value);
        conditions.push(format!("{sql} ?{}", values.len()));
    };
    if let Some(integration) = filter.integration {
        condition("integration =", integration.into());
    }
    if let Some(flow) = filter.flow {
        condition("flow =", flow.into());
    }
    if let Some(status) = filter.status {
        condition("status =", status.as_str().into());
    }
    if let Some(since) = filter.since {
        condition("created_at >=", since.millis().into());
    }
    if let Some(until) = filter.until {
        condition("created_at <", until.millis().into());
    }
    if let Some(code) = filter.error_code {
        condition("json_extract(error, '$.code') =", code.into());
    }
    if let Some(parent) = filter.parent_id {
        condition("parent_id =", parent.to_string().into());
    }
    if let Some(cursor) = cursor {
        condition("id <", cursor.to_string().into());
    }
    let condition = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM executions {condition} ORDER BY id DESC LIMIT {}",
        limit + 1
    );
    let items = db.rows(&sql, &values, summary_from_row)?;
    Ok(Page::overfetched(items, limit, |item| item.id.to_string()))
}

fn prune(
    db: &dyn Db,
    ended_before: Timestamp,
    now: Timestamp,
    limit: i64,
) -> Result<Pruned, StoreError> {
    let before = ended_before.millis();
    let executions = db.execute(
        "DELETE FROM executions WHERE id IN (
           SELECT id FROM executions
            WHERE finished_at < ?1 AND status IN ('succeeded', 'failed', 'cancelled')
            LIMIT ?2)",
        args![before, limit],
    )?;
    let dedupe_keys = db.execute(
        "DELETE FROM dedupe_keys WHERE (integration, flow, key) IN (
           SELECT integration, flow, key FROM dedupe_keys WHERE expires_at <= ?1 LIMIT ?2)",
        args![now.millis(), limit],
    )?;
    db.execute(
        "DELETE FROM schedule_fires WHERE (integration, flow, scheduled_at) IN (
           SELECT integration, flow, scheduled_at FROM schedule_fires WHERE fired_at < ?1 LIMIT ?2)",
        args![before, limit],
    )?;
    // Deliveries and attempts go with their executions; a message goes once it has no
    // delivery left and is past retention itself.
    db.execute(
        "DELETE FROM deliveries WHERE execution_id IN (
           SELECT d.execution_id FROM deliveries d
            WHERE d.created_at < ?1
              AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = d.execution_id)
            LIMIT ?2)",
        args![before, limit],
    )?;
    db.execute(
        "DELETE FROM delivery_attempts WHERE id IN (
           SELECT a.id FROM delivery_attempts a
            WHERE a.at < ?1
              AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = a.execution_id)
            LIMIT ?2)",
        args![before, limit],
    )?;
    let messages = db.execute(
        "DELETE FROM messages WHERE seq IN (
           SELECT m.seq FROM messages m
            WHERE m.created_at < ?1
              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id)
            LIMIT ?2)",
        args![before, limit],
    )?;
    db.execute(
        "DELETE FROM bulk_jobs WHERE id IN (
           SELECT id FROM bulk_jobs WHERE finished_at < ?1 LIMIT ?2)",
        args![before, limit],
    )?;
    // An event goes once it is past retention and every subscriber has it.
    let events = db.execute(
        "DELETE FROM events WHERE seq IN (
           SELECT seq FROM events
            WHERE time < ?1 AND seq <= coalesce((SELECT min(seq) FROM bus_cursors), 9223372036854775807)
            LIMIT ?2)",
        args![before, limit],
    )?;
    Ok(Pruned {
        executions,
        dedupe_keys,
        messages,
        events,
    })
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn enqueue(&self, new: NewExecution) -> Result<Enqueued, StoreError> {
        self.backend
            .write(move |db| {
                if let Some(holder) = dedupe_holder(db, &new)? {
                    return Ok(Enqueued {
                        id: holder,
                        duplicate: true,
                    });
                }
                insert_execution(db, &new)?;
                Ok(Enqueued {
                    id: new.id.clone(),
                    duplicate: false,
                })
            })
            .await
    }

    async fn lease(
        &self,
        node: &NodeId,
        slots: Slots,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Vec<LeasedExecution>, StoreError> {
        let node = node.clone();
        self.backend
            .write(move |db| lease_batch(db, &node, slots, now, expires_at))
            .await
    }

    async fn renew(
        &self,
        leases: Vec<(ExecutionId, LeaseToken)>,
        expires_at: Timestamp,
    ) -> Result<Vec<ExecutionId>, StoreError> {
        self.backend
            .write(move |db| {
                let mut lost = Vec::new();
                for (id, lease) in &leases {
                    let renewed = db.execute(
                        "UPDATE executions SET lease_expires_at = ?3 WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
                        args![id.as_str(), lease.as_str(), expires_at.millis()],
                    )?;
                    if renewed == 0 {
                        lost.push(id.clone());
                    }
                }
                Ok(lost)
            })
            .await
    }

    async fn checkpoint(&self, checkpoint: Checkpoint) -> Result<Checkpointed, StoreError> {
        self.backend
            .write(move |db| write_checkpoint(db, &checkpoint))
            .await
    }

    async fn release(&self, leases: Vec<(ExecutionId, LeaseToken)>) -> Result<(), StoreError> {
        self.backend
            .write(move |db| {
                for (id, lease) in &leases {
                    db.execute(
                        "UPDATE executions SET status = 'queued', lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
                          WHERE id = ?1 AND lease_token = ?2 AND status = 'running'",
                        args![id.as_str(), lease.as_str()],
                    )?;
                }
                db.announce(Signal::Work);
                Ok(())
            })
            .await
    }

    async fn requeue_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.backend
            .write(move |db| requeue(db, "lease_expires_at < ?1", now.millis().into()))
            .await
    }

    async fn recover_orphans(&self, node: &NodeId) -> Result<u64, StoreError> {
        if !self.backend.sole_process() {
            // Other nodes' leases are live; a dead node's expire and are swept.
            return self.requeue_expired(Timestamp::now()).await;
        }
        let node = node.as_str().to_owned();
        self.backend
            .write(move |db| {
                requeue(
                    db,
                    "(lease_owner IS NULL OR lease_owner <> ?1)",
                    Value::from(&node),
                )
            })
            .await
    }

    async fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionDetail>, StoreError> {
        let id = id.clone();
        self.backend
            .read(move |db| execution_detail(db, id.as_str()))
            .await
    }

    async fn outcome(&self, id: &ExecutionId) -> Result<Option<Outcome>, StoreError> {
        let id = id.clone();
        self.backend
            .read(move |db| {
                db.row(
                    "SELECT status, error, output, response FROM executions WHERE id = ?1",
                    args![id.as_str()],
                    |row| {
                        Ok(Outcome {
                            status: parse_status(&row.text(0)?)?,
                            error: parse_error(row.opt_text(1)?)?,
                            output: row.opt_json(2)?,
                            response: row.opt_json(3)?,
                        })
                    },
                )
            })
            .await
    }

    async fn hand_off(&self, id: &ExecutionId, url: &str) -> Result<bool, StoreError> {
        let (id, url) = (id.clone(), url.to_owned());
        self.backend
            .write(move |db| ends::hand_off(db, id.as_str(), &url))
            .await
    }

    async fn executions(
        &self,
        filter: ExecutionFilter,
        limit: usize,
        cursor: Option<ExecutionId>,
    ) -> Result<Page<ExecutionSummary>, StoreError> {
        self.backend
            .read(move |db| list_executions(db, filter, limit, cursor))
            .await
    }

    async fn next_run_at(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        self.backend
            .read(move |db| {
                let next = db.one(
                    // Without the index named, SQLite walks the status index through the
                    // whole backlog (the lease query's story).
                    "SELECT min(run_at) FROM executions INDEXED BY executions_runnable
                      WHERE status IN ('queued', 'retrying', 'waiting') AND run_at > ?1",
                    args![now.millis()],
                    |row| row.opt_int(0),
                )?;
                Ok(next.map(Timestamp))
            })
            .await
    }

    async fn queue(&self, now: Timestamp) -> Result<Vec<QueuedFlow>, StoreError> {
        self.backend
            .read(move |db| {
                db.rows(
                    "SELECT integration, flow, count(*), min(run_at) FROM executions
                     WHERE status IN ('queued', 'retrying', 'waiting') AND run_at <= ?1
                     GROUP BY integration, flow",
                    args![now.millis()],
                    |row| {
                        Ok(QueuedFlow {
                            integration: row.text(0)?,
                            flow: row.text(1)?,
                            depth: as_u64(row.int(2)?),
                            oldest_runnable_since: Timestamp(row.int(3)?),
                        })
                    },
                )
            })
            .await
    }

    async fn window_stats(
        &self,
        integration: &str,
        flows: &[String],
        since: Timestamp,
    ) -> Result<WindowStats, StoreError> {
        let integration = integration.to_owned();
        let flows = flows.to_vec();
        self.backend
            .read(move |db| alerts::window_stats(db, &integration, &flows, since))
            .await
    }

    async fn alert_states(&self) -> Result<Vec<AlertState>, StoreError> {
        self.backend.read(alerts::alert_states).await
    }

    async fn change_alert(&self, change: AlertChange) -> Result<bool, StoreError> {
        self.backend
            .write(move |db| alerts::change_alert(db, &change))
            .await
    }

    async fn retry_failed(&self, id: &ExecutionId) -> Result<Control, StoreError> {
        let id = id.clone();
        self.backend
            .write(move |db| control::retry_failed(db, &id))
            .await
    }

    async fn cancel(&self, id: &ExecutionId) -> Result<Control, StoreError> {
        let id = id.clone();
        self.backend.write(move |db| control::cancel(db, &id)).await
    }

    async fn prune(
        &self,
        ended_before: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Pruned, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.backend
            .write(move |db| prune(db, ended_before, now, limit))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.backend
            .read(|db| db.one("SELECT 1", args![], |_| Ok(())))
            .await
    }

    fn cluster(&self) -> Option<Cluster> {
        self.backend.cluster()
    }

    async fn heartbeat(&self, heartbeat: Heartbeat) -> Result<(), StoreError> {
        self.backend
            .write(move |db| cluster::heartbeat(db, &heartbeat))
            .await
    }

    async fn nodes(&self, since: Timestamp) -> Result<Vec<NodeRecord>, StoreError> {
        self.backend.read(move |db| cluster::nodes(db, since)).await
    }

    async fn save_job(&self, job: JobRecord) -> Result<(), StoreError> {
        self.backend.write(move |db| jobs::save(db, &job)).await
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_owned();
        self.backend.read(move |db| jobs::find(db, &id)).await
    }
}
