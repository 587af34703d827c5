//! Schedules on SQLite.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use switchboard_core::{ExecutionId, Timestamp};

use super::{SqliteStore, insert_execution, parse_id};
use crate::StoreError;
use crate::records::Page;
use crate::schedule::{
    Fire, FireOutcome, FireRecord, ScheduleDefinition, ScheduleFilter, ScheduleRecord,
    ScheduleStore,
};

const COLUMNS: &str =
    "integration, flow, timing, next_fire_at, paused, last_fire_at, last_success_at";

fn record(row: &Row<'_>) -> rusqlite::Result<ScheduleRecord> {
    Ok(ScheduleRecord {
        integration: row.get(0)?,
        flow: row.get(1)?,
        timing: row.get(2)?,
        next_fire_at: Timestamp(row.get(3)?),
        paused: row.get(4)?,
        last_fire_at: row.get::<_, Option<i64>>(5)?.map(Timestamp),
        last_success_at: row.get::<_, Option<i64>>(6)?.map(Timestamp),
    })
}

fn one(
    connection: &Connection,
    integration: &str,
    flow: &str,
) -> Result<Option<ScheduleRecord>, StoreError> {
    Ok(connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM schedules WHERE integration = ?1 AND flow = ?2"
        ))?
        .query_row([integration, flow], record)
        .optional()?)
}

/// After execution `id` ended: when it was a schedule's run and succeeded, the schedule
/// remembers its scheduled time as the last success.
pub(super) fn succeeded(connection: &Connection, id: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE schedules SET last_success_at = e.scheduled_at
               FROM (SELECT integration, flow, scheduled_at FROM executions
                      WHERE id = ?1 AND status = 'succeeded' AND scheduled_at IS NOT NULL) AS e
              WHERE schedules.integration = e.integration AND schedules.flow = e.flow
                AND COALESCE(schedules.last_success_at, 0) < e.scheduled_at",
        )?
        .execute([id])?;
    Ok(())
}

/// An execution of the flow that has not ended, if any.
fn running(
    connection: &Connection,
    integration: &str,
    flow: &str,
) -> Result<Option<ExecutionId>, StoreError> {
    let id: Option<String> = connection
        .prepare_cached(
            "SELECT id FROM executions
              WHERE integration = ?1 AND flow = ?2
                AND status IN ('queued', 'running', 'retrying', 'waiting')
              LIMIT 1",
        )?
        .query_row([integration, flow], |row| row.get(0))
        .optional()?;
    id.as_deref().map(parse_id).transpose()
}

/// Claims and records one [`Fire`].
fn fire_one(connection: &Connection, fire: &Fire) -> Result<FireOutcome, StoreError> {
    let now = Timestamp::now().millis();
    if let Some(claimed) = fire.claimed {
        let next = fire.next_fire_at.unwrap_or(claimed).millis();
        let moved = connection
            .prepare_cached(
                "UPDATE schedules SET next_fire_at = ?4
                  WHERE integration = ?1 AND flow = ?2 AND next_fire_at = ?3 AND paused = 0",
            )?
            .execute(params![fire.integration, fire.flow, claimed.millis(), next])?;
        if moved == 0 {
            return Ok(FireOutcome::Lost);
        }
    }
    let skipped = if fire.skip_if_running {
        running(connection, &fire.integration, &fire.flow)?
    } else {
        None
    };
    let mut record = connection.prepare_cached(
        "INSERT INTO schedule_fires (integration, flow, scheduled_at, fired_at, outcome, execution_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (integration, flow, scheduled_at) DO NOTHING",
    )?;
    let mut fired = Vec::new();
    let mut last_fire_at = None;
    for execution in &fire.executions {
        let Some(scheduled_at) = execution.scheduled_at else {
            continue;
        };
        last_fire_at = Some(scheduled_at.millis());
        // A fire asked for by hand is no fire of the schedule's: its execution says it.
        if fire.claimed.is_some() {
            let outcome = match &skipped {
                Some(_) => "skipped",
                None if execution.trigger["fire"] == "catch_up" => "caught_up",
                None => "fired",
            };
            let queued = skipped.is_none().then_some(execution.id.as_str());
            let recorded = record.execute(params![
                fire.integration,
                fire.flow,
                scheduled_at.millis(),
                now,
                outcome,
                queued
            ])?;
            if recorded == 0 {
                // Fired before (the deterministic key holds): never twice.
                continue;
            }
        }
        if skipped.is_none() {
            insert_execution(connection, execution)?;
            fired.push(execution.id.clone());
        }
    }
    if let Some(at) = last_fire_at.filter(|_| fire.claimed.is_some()) {
        connection
            .prepare_cached(
                "UPDATE schedules SET last_fire_at = ?3 WHERE integration = ?1 AND flow = ?2",
            )?
            .execute(params![fire.integration, fire.flow, at])?;
    }
    Ok(match skipped {
        Some(running) => FireOutcome::Skipped { running },
        None => FireOutcome::Fired(fired),
    })
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn sync_schedules(&self, schedules: Vec<ScheduleDefinition>) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                let mut stored: HashMap<(String, String), String> = HashMap::new();
                {
                    let mut statement = connection
                        .prepare_cached("SELECT integration, flow, timing FROM schedules")?;
                    let rows = statement
                        .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))?;
                    for row in rows {
                        let (key, timing) = row?;
                        stored.insert(key, timing);
                    }
                }
                let mut upsert = connection.prepare_cached(
                    "INSERT INTO schedules (integration, flow, timing, next_fire_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (integration, flow) DO UPDATE SET timing = ?3, next_fire_at = ?4",
                )?;
                for schedule in &schedules {
                    let key = (schedule.integration.clone(), schedule.flow.clone());
                    match stored.remove(&key) {
                        Some(timing) if timing == schedule.timing => {}
                        _ => {
                            upsert.execute(params![
                                schedule.integration,
                                schedule.flow,
                                schedule.timing,
                                schedule.next_fire_at.millis()
                            ])?;
                        }
                    }
                }
                let mut remove = connection
                    .prepare_cached("DELETE FROM schedules WHERE integration = ?1 AND flow = ?2")?;
                for (integration, flow) in stored.keys() {
                    remove.execute([integration, flow])?;
                }
                Ok(())
            })
            .await
    }

    async fn schedules(&self, filter: ScheduleFilter) -> Result<Page<ScheduleRecord>, StoreError> {
        self.readers
            .read(move |connection| {
                let (after_integration, after_flow) = match filter.after.as_deref() {
                    Some(after) => {
                        let (integration, flow) = after.split_once('/').unwrap_or((after, ""));
                        (integration.to_owned(), flow.to_owned())
                    }
                    None => (String::new(), String::new()),
                };
                let limit = filter.limit.max(1);
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM schedules
                      WHERE (?1 IS NULL OR integration = ?1)
                        AND (integration, flow) > (?2, ?3)
                      ORDER BY integration, flow
                      LIMIT ?4"
                ))?;
                let rows = statement.query_map(
                    params![
                        filter.integration,
                        after_integration,
                        after_flow,
                        i64::try_from(limit + 1).unwrap_or(i64::MAX)
                    ],
                    record,
                )?;
                let items = rows.collect::<Result<Vec<_>, _>>()?;
                Ok(Page::overfetched(items, limit, |schedule| {
                    format!("{}/{}", schedule.integration, schedule.flow)
                }))
            })
            .await
    }

    async fn schedule(
        &self,
        integration: &str,
        flow: &str,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        let (integration, flow) = (integration.to_owned(), flow.to_owned());
        self.readers
            .read(move |connection| one(connection, &integration, &flow))
            .await
    }

    async fn due_schedules(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM schedules
                      WHERE paused = 0 AND next_fire_at <= ?1
                      ORDER BY next_fire_at LIMIT ?2"
                ))?;
                let rows = statement.query_map(
                    params![now.millis(), i64::try_from(limit).unwrap_or(i64::MAX)],
                    record,
                )?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn next_fire_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.readers
            .read(|connection| {
                let next: Option<i64> = connection
                    .prepare_cached("SELECT MIN(next_fire_at) FROM schedules WHERE paused = 0")?
                    .query_row([], |row| row.get(0))?;
                Ok(next.map(Timestamp))
            })
            .await
    }

    async fn fire(&self, fires: Vec<Fire>) -> Result<Vec<FireOutcome>, StoreError> {
        self.writer
            .write(move |connection| {
                fires
                    .iter()
                    .map(|fire| fire_one(connection, fire))
                    .collect()
            })
            .await
    }

    async fn pause_schedule(
        &self,
        integration: &str,
        flow: &str,
        paused: bool,
        next_fire_at: Timestamp,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        let (integration, flow) = (integration.to_owned(), flow.to_owned());
        self.writer
            .write(move |connection| {
                if paused {
                    connection
                        .prepare_cached(
                            "UPDATE schedules SET paused = 1 WHERE integration = ?1 AND flow = ?2",
                        )?
                        .execute([&integration, &flow])?;
                } else {
                    connection
                        .prepare_cached(
                            "UPDATE schedules SET paused = 0, next_fire_at = ?3
                              WHERE integration = ?1 AND flow = ?2 AND paused = 1",
                        )?
                        .execute(params![integration, flow, next_fire_at.millis()])?;
                }
                one(connection, &integration, &flow)
            })
            .await
    }

    async fn fires(
        &self,
        integration: &str,
        flow: &str,
        limit: usize,
    ) -> Result<Vec<FireRecord>, StoreError> {
        let (integration, flow) = (integration.to_owned(), flow.to_owned());
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT scheduled_at, fired_at, outcome, execution_id FROM schedule_fires
                      WHERE integration = ?1 AND flow = ?2
                      ORDER BY scheduled_at DESC LIMIT ?3",
                )?;
                let rows = statement.query_map(
                    params![integration, flow, i64::try_from(limit).unwrap_or(i64::MAX)],
                    |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get::<_, Option<String>>(3)?,
                        ))
                    },
                )?;
                let mut fires = Vec::new();
                for row in rows {
                    let (scheduled_at, fired_at, outcome, execution_id) = row?;
                    fires.push(FireRecord {
                        scheduled_at: Timestamp(scheduled_at),
                        fired_at: Timestamp(fired_at),
                        outcome,
                        execution_id: execution_id.as_deref().map(parse_id).transpose()?,
                    });
                }
                Ok(fires)
            })
            .await
    }
}
