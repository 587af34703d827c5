//! The event bus, its cursors, and flow state.

use std::collections::HashSet;

use async_trait::async_trait;
use serde_json::Value as Json;
use switchboard_core::Timestamp;

use super::{Backend, Db, Row, Serial, SqlStore, args, as_u64, insert_execution, json_text};
use crate::StoreError;
use crate::bus::{Advance, BusStore, Cursor, Event, NewEvent, Published, StateChange, TopicStats};
use crate::cluster::Signal;
use crate::records::Page;

const EVENT_COLUMNS: &str = "seq, id, topic, key, source, time, data";

fn event_from_row(row: &dyn Row) -> Result<Event, StoreError> {
    Ok(Event::new(
        as_u64(row.int(0)?),
        NewEvent {
            id: row.text(1)?,
            topic: row.text(2)?,
            key: row.opt_text(3)?,
            source: row.text(4)?,
            time: Timestamp(row.int(5)?),
            data: row.json(6)?,
        },
    ))
}

fn from_seq(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Appends events whose id is new; answers each with its position.
pub(super) fn append_events(
    db: &dyn Db,
    events: &[NewEvent],
) -> Result<Vec<Published>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    db.serialize(Serial::Bus)?;
    let mut published = Vec::with_capacity(events.len());
    for event in events {
        let appended = db.row(
            "INSERT INTO events (id, topic, key, source, time, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO NOTHING
             RETURNING seq",
            args![
                &event.id,
                &event.topic,
                event.key.as_deref(),
                &event.source,
                event.time.millis(),
                json_text(&event.data)
            ],
            |row| row.int(0),
        )?;
        let seq = match appended {
            Some(seq) => seq,
            None => db.one(
                "SELECT seq FROM events WHERE id = ?1",
                args![&event.id],
                |row| row.int(0),
            )?,
        };
        if appended.is_some() {
            db.announce(Signal::Events);
        }
        published.push(Published {
            id: event.id.clone(),
            sequence: as_u64(seq).to_string(),
            duplicate: appended.is_none(),
        });
    }
    Ok(published)
}

/// Writes state changes.
pub(super) fn change_state(db: &dyn Db, changes: &[StateChange]) -> Result<(), StoreError> {
    let now = Timestamp::now().millis();
    for change in changes {
        match &change.value {
            Some(value) => db.execute(
                "INSERT INTO flow_state (namespace, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                args![&change.namespace, &change.key, json_text(value), now],
            )?,
            None => db.execute(
                "DELETE FROM flow_state WHERE namespace = ?1 AND key = ?2",
                args![&change.namespace, &change.key],
            )?,
        };
    }
    Ok(())
}

fn head(db: &dyn Db) -> Result<u64, StoreError> {
    let seq = db.one("SELECT max(seq) FROM events", args![], |row| row.opt_int(0))?;
    Ok(seq.map_or(0, as_u64))
}

fn cursors(db: &dyn Db) -> Result<Vec<Cursor>, StoreError> {
    db.rows(
        "SELECT subscriber, seq FROM bus_cursors ORDER BY subscriber",
        args![],
        |row| {
            Ok(Cursor {
                subscriber: row.text(0)?,
                seq: as_u64(row.int(1)?),
            })
        },
    )
}

#[async_trait]
impl<B: Backend> BusStore for SqlStore<B> {
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Published>, StoreError> {
        self.backend
            .write(move |db| append_events(db, &events))
            .await
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.backend
            .read(move |db| {
                db.rows(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                    ),
                    args![from_seq(after), limit],
                    event_from_row,
                )
            })
            .await
    }

    async fn topic_events(
        &self,
        topic: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<Event>, StoreError> {
        let topic = topic.to_owned();
        self.backend
            .read(move |db| {
                let events = db.rows(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE topic = ?1 AND seq < ?2
                          ORDER BY seq DESC LIMIT ?3"
                    ),
                    args![
                        &topic,
                        before.map_or(i64::MAX, from_seq),
                        limit.saturating_add(1)
                    ],
                    event_from_row,
                )?;
                Ok(Page::overfetched(events, limit, |event| {
                    event.sequence.clone()
                }))
            })
            .await
    }

    async fn topics(&self) -> Result<Vec<TopicStats>, StoreError> {
        self.backend
            .read(move |db| {
                db.rows(
                    "SELECT topic, count(*), max(seq), max(time) FROM events GROUP BY topic ORDER BY topic",
                    args![],
                    |row| {
                        Ok(TopicStats {
                            topic: row.text(0)?,
                            events: as_u64(row.int(1)?),
                            last_seq: as_u64(row.int(2)?),
                            last_published_at: Timestamp(row.int(3)?),
                        })
                    },
                )
            })
            .await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        self.backend.read(head).await
    }

    async fn sync_cursors(&self, subscribers: Vec<String>) -> Result<Vec<Cursor>, StoreError> {
        self.backend
            .write(move |db| {
                let wanted: HashSet<&str> = subscribers.iter().map(String::as_str).collect();
                for cursor in &cursors(db)? {
                    if !wanted.contains(cursor.subscriber.as_str()) {
                        db.execute(
                            "DELETE FROM bus_cursors WHERE subscriber = ?1",
                            args![&cursor.subscriber],
                        )?;
                    }
                }
                let head = from_seq(head(db)?);
                for subscriber in &subscribers {
                    db.execute(
                        "INSERT INTO bus_cursors (subscriber, seq) VALUES (?1, ?2) ON CONFLICT (subscriber) DO NOTHING",
                        args![subscriber, head],
                    )?;
                }
                cursors(db)
            })
            .await
    }

    async fn cursors(&self) -> Result<Vec<Cursor>, StoreError> {
        self.backend.read(cursors).await
    }

    async fn advance(&self, advances: Vec<Advance>) -> Result<usize, StoreError> {
        self.backend
            .write(move |db| {
                let mut queued = 0;
                for advance in &advances {
                    let moved = db.execute(
                        "UPDATE bus_cursors SET seq = ?3 WHERE subscriber = ?1 AND seq = ?2",
                        args![
                            &advance.subscriber,
                            from_seq(advance.from),
                            from_seq(advance.to)
                        ],
                    )?;
                    if moved == 0 {
                        continue;
                    }
                    for execution in &advance.executions {
                        insert_execution(db, execution)?;
                    }
                    queued += advance.executions.len();
                }
                Ok(queued)
            })
            .await
    }

    async fn rewind(&self, subscriber: &str, since: Timestamp) -> Result<Option<u64>, StoreError> {
        let subscriber = subscriber.to_owned();
        self.backend
            .write(move |db| {
                let first = db.one(
                    "SELECT min(seq) FROM events WHERE time >= ?1",
                    args![since.millis()],
                    |row| row.opt_int(0),
                )?;
                let to = match first {
                    Some(first) => first - 1,
                    None => from_seq(head(db)?),
                };
                let moved = db.execute(
                    "UPDATE bus_cursors SET seq = ?2 WHERE subscriber = ?1",
                    args![&subscriber, to],
                )?;
                Ok((moved == 1).then_some(as_u64(to)))
            })
            .await
    }

    async fn state(&self, namespace: &str, key: &str) -> Result<Option<Json>, StoreError> {
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.backend
            .read(move |db| {
                db.row(
                    "SELECT value FROM flow_state WHERE namespace = ?1 AND key = ?2",
                    args![&namespace, &key],
                    |row| row.json(0),
                )
            })
            .await
    }
}
