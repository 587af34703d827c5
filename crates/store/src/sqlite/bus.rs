//! The event bus, its cursors and flow state on SQLite.

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use switchboard_core::Timestamp;

use super::{SqliteStore, insert_execution, json_text, parse_json};
use crate::StoreError;
use crate::bus::{Advance, BusStore, Cursor, Event, NewEvent, Published, StateChange, TopicStats};
use crate::records::Page;

const EVENT_COLUMNS: &str = "seq, id, topic, key, source, time, data";

fn event_from_row(row: &Row<'_>) -> Result<Event, StoreError> {
    let seq: i64 = row.get(0)?;
    Ok(Event::new(
        u64::try_from(seq).unwrap_or(0),
        NewEvent {
            id: row.get(1)?,
            topic: row.get(2)?,
            key: row.get(3)?,
            source: row.get(4)?,
            time: Timestamp(row.get(5)?),
            data: parse_json(&row.get::<_, String>(6)?)?,
        },
    ))
}

fn to_seq(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn from_seq(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Appends events whose id is new; answers each with its position.
pub(super) fn append_events(
    connection: &Connection,
    events: &[NewEvent],
) -> Result<Vec<Published>, StoreError> {
    let mut insert = connection.prepare_cached(
        "INSERT INTO events (id, topic, key, source, time, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO NOTHING",
    )?;
    let mut first = connection.prepare_cached("SELECT seq FROM events WHERE id = ?1")?;
    let mut published = Vec::with_capacity(events.len());
    for event in events {
        let appended = insert.execute(params![
            event.id,
            event.topic,
            event.key,
            event.source,
            event.time.millis(),
            json_text(&event.data)
        ])? == 1;
        let seq: i64 = if appended {
            connection.last_insert_rowid()
        } else {
            first.query_row([&event.id], |row| row.get(0))?
        };
        published.push(Published {
            id: event.id.clone(),
            sequence: to_seq(seq).to_string(),
            duplicate: !appended,
        });
    }
    Ok(published)
}

/// Writes state changes.
pub(super) fn change_state(
    connection: &Connection,
    changes: &[StateChange],
) -> Result<(), StoreError> {
    let now = Timestamp::now().millis();
    for change in changes {
        match &change.value {
            Some(value) => connection
                .prepare_cached(
                    "INSERT INTO flow_state (namespace, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )?
                .execute(params![change.namespace, change.key, json_text(value), now])?,
            None => connection
                .prepare_cached("DELETE FROM flow_state WHERE namespace = ?1 AND key = ?2")?
                .execute(params![change.namespace, change.key])?,
        };
    }
    Ok(())
}

fn head(connection: &Connection) -> Result<u64, StoreError> {
    let seq: Option<i64> = connection
        .prepare_cached("SELECT max(seq) FROM events")?
        .query_row([], |row| row.get(0))?;
    Ok(seq.map_or(0, to_seq))
}

fn cursors(connection: &Connection) -> Result<Vec<Cursor>, StoreError> {
    let mut statement =
        connection.prepare_cached("SELECT subscriber, seq FROM bus_cursors ORDER BY subscriber")?;
    let rows = statement.query_map([], |row| {
        Ok(Cursor {
            subscriber: row.get(0)?,
            seq: to_seq(row.get(1)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[async_trait]
impl BusStore for SqliteStore {
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Published>, StoreError> {
        self.writer
            .write(move |connection| append_events(connection, &events))
            .await
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))?;
                let mut rows = statement.query(params![
                    from_seq(after),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ])?;
                let mut events = Vec::new();
                while let Some(row) = rows.next()? {
                    events.push(event_from_row(row)?);
                }
                Ok(events)
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
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE topic = ?1 AND seq < ?2
                      ORDER BY seq DESC LIMIT ?3"
                ))?;
                let mut rows = statement.query(params![
                    topic,
                    before.map_or(i64::MAX, from_seq),
                    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
                ])?;
                let mut events = Vec::new();
                while let Some(row) = rows.next()? {
                    events.push(event_from_row(row)?);
                }
                Ok(Page::overfetched(events, limit, |event| {
                    event.sequence.clone()
                }))
            })
            .await
    }

    async fn topics(&self) -> Result<Vec<TopicStats>, StoreError> {
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT topic, count(*), max(seq), max(time) FROM events GROUP BY topic ORDER BY topic",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok(TopicStats {
                        topic: row.get(0)?,
                        events: to_seq(row.get(1)?),
                        last_seq: to_seq(row.get(2)?),
                        last_published_at: Timestamp(row.get(3)?),
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        self.readers.read(head).await
    }

    async fn sync_cursors(&self, subscribers: Vec<String>) -> Result<Vec<Cursor>, StoreError> {
        self.writer
            .write(move |connection| {
                let wanted: HashSet<&str> = subscribers.iter().map(String::as_str).collect();
                let existing = cursors(connection)?;
                let mut delete =
                    connection.prepare_cached("DELETE FROM bus_cursors WHERE subscriber = ?1")?;
                for cursor in &existing {
                    if !wanted.contains(cursor.subscriber.as_str()) {
                        delete.execute([&cursor.subscriber])?;
                    }
                }
                let head = from_seq(head(connection)?);
                let mut insert = connection.prepare_cached(
                    "INSERT INTO bus_cursors (subscriber, seq) VALUES (?1, ?2) ON CONFLICT (subscriber) DO NOTHING",
                )?;
                for subscriber in &subscribers {
                    insert.execute(params![subscriber, head])?;
                }
                cursors(connection)
            })
            .await
    }

    async fn cursors(&self) -> Result<Vec<Cursor>, StoreError> {
        self.readers.read(cursors).await
    }

    async fn advance(&self, advances: Vec<Advance>) -> Result<usize, StoreError> {
        self.writer
            .write(move |connection| {
                let mut queued = 0;
                for advance in &advances {
                    let moved = connection
                        .prepare_cached(
                            "UPDATE bus_cursors SET seq = ?3 WHERE subscriber = ?1 AND seq = ?2",
                        )?
                        .execute(params![
                            advance.subscriber,
                            from_seq(advance.from),
                            from_seq(advance.to)
                        ])?;
                    if moved == 0 {
                        continue;
                    }
                    for execution in &advance.executions {
                        insert_execution(connection, execution)?;
                    }
                    queued += advance.executions.len();
                }
                Ok(queued)
            })
            .await
    }

    async fn rewind(&self, subscriber: &str, since: Timestamp) -> Result<Option<u64>, StoreError> {
        let subscriber = subscriber.to_owned();
        self.writer
            .write(move |connection| {
                let first: Option<i64> = connection
                    .prepare_cached("SELECT min(seq) FROM events WHERE time >= ?1")?
                    .query_row([since.millis()], |row| row.get(0))?;
                let to = match first {
                    Some(first) => first - 1,
                    None => from_seq(head(connection)?),
                };
                let moved = connection
                    .prepare_cached("UPDATE bus_cursors SET seq = ?2 WHERE subscriber = ?1")?
                    .execute(params![subscriber, to])?;
                Ok((moved == 1).then_some(to_seq(to)))
            })
            .await
    }

    async fn state(&self, namespace: &str, key: &str) -> Result<Option<Value>, StoreError> {
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT value FROM flow_state WHERE namespace = ?1 AND key = ?2",
                    )?
                    .query_row(params![namespace, key], |row| row.get::<_, String>(0))
                    .optional()?
                    .map(|text| parse_json(&text))
                    .transpose()
            })
            .await
    }
}
