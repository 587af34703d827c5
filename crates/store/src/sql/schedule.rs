//! Schedules and their fires.

use std::collections::HashMap;

use async_trait::async_trait;
use switchboard_core::{ExecutionId, Timestamp};

use super::{Backend, Db, Row, SqlStore, args, insert_execution, parse_id};
use crate::StoreError;
use crate::cluster::Signal;
use crate::records::Page;
use crate::schedule::{
    Fire, FireOutcome, FireRecord, ScheduleDefinition, ScheduleFilter, ScheduleRecord,
    ScheduleStore,
};

const COLUMNS: &str =
    "integration, flow, timing, next_fire_at, paused, last_fire_at, last_success_at";

fn record(row: &dyn Row) -> Result<ScheduleRecord, StoreError> {
    Ok(ScheduleRecord {
        integration: row.text(0)?,
        flow: row.text(1)?,
        timing: row.text(2)?,
        next_fire_at: Timestamp(row.int(3)?),
        paused: row.flag(4)?,
        last_fire_at: row.opt_int(5)?.map(Timestamp),
        last_success_at: row.opt_int(6)?.map(Timestamp),
    })
}

fn one(db: &dyn Db, integration: &str, flow: &str) -> Result<Option<ScheduleRecord>, StoreError> {
    db.row(
        &format!("SELECT {COLUMNS} FROM schedules WHERE integration = ?1 AND flow = ?2"),
        args![integration, flow],
        record,
    )
}

/// After execution `id` ended: when it was a schedule's run and succeeded, the schedule
/// remembers its scheduled time as the last success.
pub(super) fn succeeded(db: &dyn Db, id: &str) -> Result<(), StoreError> {
    db.execute(
        "UPDATE schedules SET last_success_at = e.scheduled_at
           FROM (SELECT integration, flow, scheduled_at FROM executions
                  WHERE id = ?1 AND status = 'succeeded' AND scheduled_at IS NOT NULL) AS e
          WHERE schedules.integration = e.integration AND schedules.flow = e.flow
            AND COALESCE(schedules.last_success_at, 0) < e.scheduled_at",
        args![id],
    )?;
    Ok(())
}

/// An execution of the flow that has not ended, if any.
fn running(db: &dyn Db, integration: &str, flow: &str) -> Result<Option<ExecutionId>, StoreError> {
    db.row(
        "SELECT id FROM executions
          WHERE integration = ?1 AND flow = ?2
            AND status IN ('queued', 'running', 'retrying', 'waiting')
          LIMIT 1",
        args![integration, flow],
        |row| parse_id(&row.text(0)?),
    )
}

/// Claims and records one [`Fire`].
fn fire_one(db: &dyn Db, fire: &Fire) -> Result<FireOutcome, StoreError> {
    let now = Timestamp::now().millis();
    if let Some(claimed) = fire.claimed {
        let next = fire.next_fire_at.unwrap_or(claimed).millis();
        let moved = db.execute(
            "UPDATE schedules SET next_fire_at = ?4
              WHERE integration = ?1 AND flow = ?2 AND next_fire_at = ?3 AND paused = 0",
            args![&fire.integration, &fire.flow, claimed.millis(), next],
        )?;
        if moved == 0 {
            return Ok(FireOutcome::Lost);
        }
    }
    let skipped = if fire.skip_if_running {
        running(db, &fire.integration, &fire.flow)?
    } else {
        None
    };
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
            let recorded = db.execute(
                "INSERT INTO schedule_fires (integration, flow, scheduled_at, fired_at, outcome, execution_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (integration, flow, scheduled_at) DO NOTHING",
                args![
                    &fire.integration,
                    &fire.flow,
                    scheduled_at.millis(),
                    now,
                    outcome,
                    queued
                ],
            )?;
            if recorded == 0 {
                // Fired before (the deterministic key holds): never twice.
                continue;
            }
        }
        if skipped.is_none() {
            insert_execution(db, execution)?;
            fired.push(execution.id.clone());
        }
    }
    if let Some(at) = last_fire_at.filter(|_| fire.claimed.is_some()) {
        db.execute(
            "UPDATE schedules SET last_fire_at = ?3 WHERE integration = ?1 AND flow = ?2",
            args![&fire.integration, &fire.flow, at],
        )?;
    }
    Ok(match skipped {
        Some(running) => FireOutcome::Skipped { running },
        None => FireOutcome::Fired(fired),
    })
}

fn sync(db: &dyn Db, schedules: &[ScheduleDefinition]) -> Result<(), StoreError> {
    let mut stored: HashMap<(String, String), String> = db
        .rows(
            "SELECT integration, flow, timing FROM schedules",
            args![],
            |row| Ok(((row.text(0)?, row.text(1)?), row.text(2)?)),
        )?
        .into_iter()
        .collect();
    for schedule in schedules {
        let key = (schedule.integration.clone(), schedule.flow.clone());
        match stored.remove(&key) {
            Some(timing) if timing == schedule.timing => {}
            _ => {
                db.execute(
                    "INSERT INTO schedules (integration, flow, timing, next_fire_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (integration, flow) DO UPDATE SET timing = ?3, next_fire_at = ?4",
                    args![
                        &schedule.integration,
                        &schedule.flow,
                        &schedule.timing,
                        schedule.next_fire_at.millis()
                    ],
                )?;
            }
        }
    }
    for (integration, flow) in stored.keys() {
        db.execute(
            "DELETE FROM schedules WHERE integration = ?1 AND flow = ?2",
            args![integration, flow],
        )?;
    }
    db.announce(Signal::Schedules);
    Ok(())
}

#[async_trait]
impl<B: Backend> ScheduleStore for SqlStore<B> {
    async fn sync_schedules(&self, schedules: Vec<ScheduleDefinition>) -> Result<(), StoreError> {
        self.backend.write(move |db| sync(db, &schedules)).await
    }

    async fn schedules(&self, filter: ScheduleFilter) -> Result<Page<ScheduleRecord>, StoreError> {
        self.backend
            .read(move |db| {
                let (after_integration, after_flow) = match filter.after.as_deref() {
                    Some(after) => {
                        let (integration, flow) = after.split_once('/').unwrap_or((after, ""));
                        (integration.to_owned(), flow.to_owned())
                    }
                    None => (String::new(), String::new()),
                };
                let limit = filter.limit.max(1);
                let items = db.rows(
                    &format!(
                        "SELECT {COLUMNS} FROM schedules
                          WHERE (CAST(?1 AS TEXT) IS NULL OR integration = ?1)
                            AND (integration, flow) > (?2, ?3)
                          ORDER BY integration, flow
                          LIMIT ?4"
                    ),
                    args![
                        filter.integration.as_deref(),
                        &after_integration,
                        &after_flow,
                        limit + 1
                    ],
                    record,
                )?;
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
        self.backend
            .read(move |db| one(db, &integration, &flow))
            .await
    }

    async fn due_schedules(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.backend
            .read(move |db| {
                db.rows(
                    &format!(
                        "SELECT {COLUMNS} FROM schedules
                          WHERE paused = 0 AND next_fire_at <= ?1
                          ORDER BY next_fire_at LIMIT ?2"
                    ),
                    args![now.millis(), limit],
                    record,
                )
            })
            .await
    }

    async fn next_fire_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.backend
            .read(|db| {
                let next = db.one(
                    "SELECT MIN(next_fire_at) FROM schedules WHERE paused = 0",
                    args![],
                    |row| row.opt_int(0),
                )?;
                Ok(next.map(Timestamp))
            })
            .await
    }

    async fn fire(&self, fires: Vec<Fire>) -> Result<Vec<FireOutcome>, StoreError> {
        self.backend
            .write(move |db| fires.iter().map(|fire| fire_one(db, fire)).collect())
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
        self.backend
            .write(move |db| {
                if paused {
                    db.execute(
                        "UPDATE schedules SET paused = 1 WHERE integration = ?1 AND flow = ?2",
                        args![&integration, &flow],
                    )?;
                } else {
                    db.execute(
                        "UPDATE schedules SET paused = 0, next_fire_at = ?3
                          WHERE integration = ?1 AND flow = ?2 AND paused = 1",
                        args![&integration, &flow, next_fire_at.millis()],
                    )?;
                }
                db.announce(Signal::Schedules);
                one(db, &integration, &flow)
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
        self.backend
            .read(move |db| {
                db.rows(
                    "SELECT scheduled_at, fired_at, outcome, execution_id FROM schedule_fires
                      WHERE integration = ?1 AND flow = ?2
                      ORDER BY scheduled_at DESC LIMIT ?3",
                    args![&integration, &flow, limit],
                    |row| {
                        Ok(FireRecord {
                            scheduled_at: Timestamp(row.int(0)?),
                            fired_at: Timestamp(row.int(1)?),
                            outcome: row.text(2)?,
                            execution_id: row.opt_text(3)?.as_deref().map(parse_id).transpose()?,
                        })
                    },
                )
            })
            .await
    }
}
