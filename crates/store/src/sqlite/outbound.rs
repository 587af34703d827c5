//! The outbound webhook tables on SQLite: endpoints, messages, deliveries, attempts.

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use switchboard_core::Timestamp;
use switchboard_core::ids::EndpointId;

use super::{SqliteStore, as_u32, insert_execution, json_text, parse_id, parse_json, parse_status};
use crate::StoreError;
use crate::outbound::{
    Attempt, AttemptFilter, AttemptRecorded, AttemptStatus, Delivery, DeliveryOrdering, Endpoint,
    EndpointSecrets, EndpointSettings, EndpointVerdict, Message, MessageCreated, NewDelivery,
    OutboundStore, PreviousSecret,
};
use crate::records::{ExecutionStatus, Page};

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, filter, headers, rate_limit, ordering, retry_schedule, disabled, disabled_reason, failing_since, metadata, tenant, created_at, updated_at";

fn parse_endpoint_id(text: &str) -> Result<EndpointId, StoreError> {
    text.parse()
        .map_err(|error: switchboard_core::IdError| StoreError::Corrupt(error.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(text)?)
}

fn endpoint_from_row(row: &Row<'_>) -> Result<Endpoint, StoreError> {
    let ordering: String = row.get(7)?;
    Ok(Endpoint {
        id: parse_endpoint_id(&row.get::<_, String>(0)?)?,
        settings: EndpointSettings {
            url: row.get(1)?,
            description: row.get(2)?,
            event_types: from_json(&row.get::<_, String>(3)?)?,
            filter: row.get(4)?,
            headers: from_json(&row.get::<_, String>(5)?)?,
            rate_limit: row.get::<_, Option<i64>>(6)?.map(as_u32),
            ordering: DeliveryOrdering::parse(&ordering)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown ordering `{ordering}`")))?,
            retry_schedule: row
                .get::<_, Option<String>>(8)?
                .map(|text| from_json(&text))
                .transpose()?,
            disabled: row.get(9)?,
            metadata: from_json(&row.get::<_, String>(12)?)?,
            tenant: row.get(13)?,
        },
        disabled_reason: row.get(10)?,
        failing_since: row.get::<_, Option<i64>>(11)?.map(Timestamp),
        created_at: Timestamp(row.get(14)?),
        updated_at: Timestamp(row.get(15)?),
    })
}

/// An endpoint's id and settings as the values of the columns `id` to `tenant`, in
/// table order (`?1` to `?12` of the insert and the update).
fn endpoint_row(id: &EndpointId, settings: &EndpointSettings) -> Result<Vec<SqlValue>, StoreError> {
    Ok(vec![
        id.to_string().into(),
        settings.url.clone().into(),
        settings.description.clone().into(),
        serde_json::to_string(&settings.event_types)?.into(),
        settings.filter.clone().into(),
        serde_json::to_string(&settings.headers)?.into(),
        settings.rate_limit.into(),
        settings.ordering.as_str().to_owned().into(),
        settings
            .retry_schedule
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?
            .into(),
        settings.disabled.into(),
        serde_json::to_string(&settings.metadata)?.into(),
        settings.tenant.clone().into(),
    ])
}

fn endpoint(connection: &Connection, id: &str) -> Result<Option<Endpoint>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?1"
    ))?;
    let mut rows = statement.query([id])?;
    rows.next()?.map(endpoint_from_row).transpose()
}

fn endpoints_where(
    connection: &Connection,
    condition: &str,
    values: Vec<SqlValue>,
    limit: usize,
) -> Result<Vec<Endpoint>, StoreError> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints {condition} ORDER BY id LIMIT {}",
        i64::try_from(limit).unwrap_or(i64::MAX)
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(params_from_iter(values.iter()))?;
    let mut endpoints = Vec::new();
    while let Some(row) = rows.next()? {
        endpoints.push(endpoint_from_row(row)?);
    }
    Ok(endpoints)
}

fn secrets(connection: &Connection, id: &str) -> Result<Option<EndpointSecrets>, StoreError> {
    connection
        .prepare_cached(
            "SELECT secret, previous_secret, previous_secret_expires_at FROM endpoints WHERE id = ?1",
        )?
        .query_row([id], |row| {
            let previous = match (row.get::<_, Option<String>>(1)?, row.get::<_, Option<i64>>(2)?) {
                (Some(key), Some(expires_at)) => Some(PreviousSecret {
                    key,
                    expires_at: Timestamp(expires_at),
                }),
                _ => None,
            };
            Ok(EndpointSecrets {
                key: row.get(0)?,
                previous,
            })
        })
        .optional()
        .map_err(StoreError::from)
}

const MESSAGE_COLUMNS: &str = "seq, id, event_type, payload, tenant, created_at";

fn message_from_row(row: &Row<'_>) -> Result<(i64, Message), StoreError> {
    Ok((
        row.get(0)?,
        Message {
            id: row.get(1)?,
            event_type: row.get(2)?,
            payload: parse_json(&row.get::<_, String>(3)?)?,
            tenant: row.get(4)?,
            created_at: Timestamp(row.get(5)?),
        },
    ))
}

const DELIVERY_COLUMNS: &str = "d.message_id, d.endpoint_id, d.execution_id, e.status, e.run_at";

fn delivery_from_row(row: &Row<'_>) -> Result<Delivery, StoreError> {
    let status = parse_status(&row.get::<_, String>(3)?)?;
    Ok(Delivery {
        message_id: row.get(0)?,
        endpoint_id: parse_endpoint_id(&row.get::<_, String>(1)?)?,
        execution_id: parse_id(&row.get::<_, String>(2)?)?,
        status,
        next_attempt_at: (status == ExecutionStatus::Retrying)
            .then(|| row.get(4).map(Timestamp))
            .transpose()?,
    })
}

fn deliveries_of(connection: &Connection, message: &str) -> Result<Vec<Delivery>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN executions e ON e.id = d.execution_id
          WHERE d.message_id = ?1 ORDER BY d.execution_id"
    ))?;
    let mut rows = statement.query([message])?;
    let mut deliveries = Vec::new();
    while let Some(row) = rows.next()? {
        deliveries.push(delivery_from_row(row)?);
    }
    Ok(deliveries)
}

fn message(connection: &Connection, id: &str) -> Result<Option<MessageCreated>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
    ))?;
    let mut rows = statement.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let (_, message) = message_from_row(row)?;
    Ok(Some(MessageCreated {
        deliveries: deliveries_of(connection, &message.id)?,
        message,
        duplicate: false,
    }))
}

fn insert_delivery(
    connection: &Connection,
    message_id: &str,
    delivery: &NewDelivery,
) -> Result<Delivery, StoreError> {
    insert_execution(connection, &delivery.execution)?;
    connection
        .prepare_cached(
            "INSERT INTO deliveries (execution_id, message_id, endpoint_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            delivery.execution.id.as_str(),
            message_id,
            delivery.endpoint.as_str(),
            delivery.execution.created_at.millis()
        ])?;
    Ok(Delivery {
        message_id: message_id.to_owned(),
        endpoint_id: delivery.endpoint.clone(),
        execution_id: delivery.execution.id.clone(),
        status: ExecutionStatus::Queued,
        next_attempt_at: None,
    })
}

const ATTEMPT_COLUMNS: &str = "id, message_id, endpoint_id, execution_id, attempt, url, at, status, response_status, latency_ms, response_headers, response_body, body_truncated, error_kind, error";

fn attempt_from_row(row: &Row<'_>) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        id: row.get(0)?,
        message_id: row.get(1)?,
        endpoint_id: parse_endpoint_id(&row.get::<_, String>(2)?)?,
        execution_id: parse_id(&row.get::<_, String>(3)?)?,
        attempt: as_u32(row.get(4)?),
        url: row.get(5)?,
        at: Timestamp(row.get(6)?),
        status: {
            let status: String = row.get(7)?;
            AttemptStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown attempt status `{status}`")))?
        },
        response_status: row
            .get::<_, Option<i64>>(8)?
            .and_then(|status| u16::try_from(status).ok()),
        latency_ms: u64::try_from(row.get::<_, i64>(9)?).unwrap_or(0),
        response_headers: parse_json(&row.get::<_, String>(10)?)?,
        response_body: row.get(11)?,
        body_truncated: row.get(12)?,
        error_kind: row.get(13)?,
        error: row.get(14)?,
    })
}

fn record_attempt(
    connection: &Connection,
    attempt: &Attempt,
    verdict: EndpointVerdict,
) -> Result<AttemptRecorded, StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO delivery_attempts (execution_id, message_id, endpoint_id, attempt, url, at, status,
                response_status, latency_ms, response_headers, response_body, body_truncated, error_kind, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            attempt.execution_id.as_str(),
            attempt.message_id,
            attempt.endpoint_id.as_str(),
            attempt.attempt,
            attempt.url,
            attempt.at.millis(),
            attempt.status.as_str(),
            attempt.response_status,
            i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX),
            json_text(&attempt.response_headers),
            attempt.response_body,
            attempt.body_truncated,
            attempt.error_kind,
            attempt.error,
        ])?;
    let id = attempt.endpoint_id.as_str();
    let at = attempt.at.millis();
    if attempt.status == AttemptStatus::Succeeded {
        connection
            .prepare_cached("UPDATE endpoints SET failing_since = NULL WHERE id = ?1")?
            .execute([id])?;
        return Ok(AttemptRecorded { disabled: None });
    }
    let reason = match verdict {
        EndpointVerdict::Disable => Some(String::from("the endpoint answered 410 Gone")),
        EndpointVerdict::Track { disable_after } => {
            // The streak starts at this attempt unless it already runs.
            let since: Option<i64> = connection
                .prepare_cached(
                    "UPDATE endpoints SET failing_since = COALESCE(failing_since, ?2) WHERE id = ?1
                     RETURNING failing_since",
                )?
                .query_row(params![id, at], |row| row.get(0))
                .optional()?;
            let since = since.unwrap_or(at);
            let limit = i64::try_from(disable_after.as_millis()).unwrap_or(i64::MAX);
            (at - since >= limit).then(|| {
                format!(
                    "every attempt failed since {}",
                    Timestamp(since).to_rfc3339()
                )
            })
        }
    };
    let Some(reason) = reason else {
        return Ok(AttemptRecorded { disabled: None });
    };
    let changed = connection
        .prepare_cached(
            "UPDATE endpoints SET disabled = 1, disabled_reason = ?2, updated_at = ?3
              WHERE id = ?1 AND disabled = 0",
        )?
        .execute(params![id, reason, at])?;
    Ok(AttemptRecorded {
        disabled: (changed > 0).then_some(reason),
    })
}

#[async_trait]
impl OutboundStore for SqliteStore {
    async fn create_endpoint(&self, endpoint: Endpoint, secret: String) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| {
                let settings = &endpoint.settings;
                connection
                    .prepare_cached(
                        "INSERT INTO endpoints (id, url, description, event_types, filter, headers, rate_limit,
                            ordering, retry_schedule, disabled, metadata, tenant, secret, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
                    )?
                    .execute(params_from_iter(
                        endpoint_row(&endpoint.id, settings)?
                            .into_iter()
                            .chain([secret.clone().into(), endpoint.created_at.millis().into()]),
                    ))?;
                Ok(())
            })
            .await
    }

    async fn endpoint(&self, id: &EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |connection| endpoint(connection, id.as_str()))
            .await
    }

    async fn endpoints(
        &self,
        tenant: Option<String>,
        limit: usize,
        cursor: Option<EndpointId>,
    ) -> Result<Page<Endpoint>, StoreError> {
        self.readers
            .read(move |connection| {
                let mut conditions = Vec::new();
                let mut values: Vec<SqlValue> = Vec::new();
                if let Some(tenant) = tenant {
                    values.push(tenant.into());
                    conditions.push(format!("tenant = ?{}", values.len()));
                }
                if let Some(cursor) = cursor {
                    values.push(String::from(cursor).into());
                    conditions.push(format!("id > ?{}", values.len()));
                }
                let condition = if conditions.is_empty() {
                    String::new()
                } else {
                    format!("WHERE {}", conditions.join(" AND "))
                };
                let items = endpoints_where(connection, &condition, values, limit + 1)?;
                Ok(Page::overfetched(items, limit, |item| item.id.to_string()))
            })
            .await
    }

    async fn subscribers(&self, tenant: Option<String>) -> Result<Vec<Endpoint>, StoreError> {
        self.readers
            .read(move |connection| match tenant {
                Some(tenant) => endpoints_where(
                    connection,
                    "WHERE disabled = 0 AND tenant = ?1",
                    vec![tenant.into()],
                    usize::MAX >> 1,
                ),
                None => endpoints_where(
                    connection,
                    "WHERE disabled = 0 AND tenant IS NULL",
                    Vec::new(),
                    usize::MAX >> 1,
                ),
            })
            .await
    }

    async fn update_endpoint(
        &self,
        id: &EndpointId,
        settings: EndpointSettings,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        let id = id.clone();
        self.writer
            .write(move |connection| {
                let changed = connection
                    .prepare_cached(
                        "UPDATE endpoints SET url = ?2, description = ?3, event_types = ?4, filter = ?5,
                            headers = ?6, rate_limit = ?7, ordering = ?8, retry_schedule = ?9,
                            disabled = ?10, metadata = ?11, tenant = ?12, updated_at = ?13,
                            disabled_reason = CASE WHEN ?10 THEN disabled_reason END,
                            failing_since = CASE WHEN ?10 OR disabled = 0 THEN failing_since END
                          WHERE id = ?1",
                    )?
                    .execute(params_from_iter(
                        endpoint_row(&id, &settings)?
                            .into_iter()
                            .chain([now.millis().into()]),
                    ))?;
                if changed == 0 {
                    return Ok(None);
                }
                endpoint(connection, id.as_str())
            })
            .await
    }

    async fn delete_endpoint(&self, id: &EndpointId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.writer
            .write(move |connection| {
                Ok(connection
                    .prepare_cached("DELETE FROM endpoints WHERE id = ?1")?
                    .execute([id.as_str()])?
                    > 0)
            })
            .await
    }

    async fn endpoint_secrets(
        &self,
        id: &EndpointId,
    ) -> Result<Option<EndpointSecrets>, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |connection| secrets(connection, id.as_str()))
            .await
    }

    async fn rotate_secret(
        &self,
        id: &EndpointId,
        key: String,
        previous_until: Timestamp,
    ) -> Result<Option<EndpointSecrets>, StoreError> {
        let id = id.clone();
        self.writer
            .write(move |connection| {
                let changed = connection
                    .prepare_cached(
                        "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = ?3,
                            secret = ?2 WHERE id = ?1",
                    )?
                    .execute(params![id.as_str(), key, previous_until.millis()])?;
                if changed == 0 {
                    return Ok(None);
                }
                secrets(connection, id.as_str())
            })
            .await
    }

    async fn create_message(
        &self,
        new: Message,
        deliveries: Vec<NewDelivery>,
    ) -> Result<MessageCreated, StoreError> {
        self.writer
            .write(move |connection| {
                if let Some(mut first) = message(connection, &new.id)? {
                    first.duplicate = true;
                    return Ok(first);
                }
                connection
                    .prepare_cached(
                        "INSERT INTO messages (id, event_type, payload, tenant, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        new.id,
                        new.event_type,
                        json_text(&new.payload),
                        new.tenant,
                        new.created_at.millis()
                    ])?;
                let deliveries = deliveries
                    .iter()
                    .map(|delivery| insert_delivery(connection, &new.id, delivery))
                    .collect::<Result<_, _>>()?;
                Ok(MessageCreated {
                    message: new.clone(),
                    deliveries,
                    duplicate: false,
                })
            })
            .await
    }

    async fn message(&self, id: &str) -> Result<Option<MessageCreated>, StoreError> {
        let id = id.to_owned();
        self.readers
            .read(move |connection| message(connection, &id))
            .await
    }

    async fn messages(
        &self,
        event_type: Option<String>,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<Page<Message>, StoreError> {
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                      WHERE (?1 IS NULL OR event_type = ?1) AND (?2 IS NULL OR seq < ?2)
                      ORDER BY seq DESC LIMIT ?3"
                ))?;
                let mut rows = statement.query(params![
                    event_type,
                    cursor,
                    i64::try_from(limit + 1).unwrap_or(i64::MAX)
                ])?;
                let mut read = Vec::new();
                while let Some(row) = rows.next()? {
                    read.push(message_from_row(row)?);
                }
                let page = Page::overfetched(read, limit, |(seq, _)| seq.to_string());
                Ok(Page {
                    items: page.items.into_iter().map(|(_, message)| message).collect(),
                    next_cursor: page.next_cursor,
                })
            })
            .await
    }

    async fn add_delivery(
        &self,
        message_id: &str,
        delivery: NewDelivery,
    ) -> Result<Delivery, StoreError> {
        let message_id = message_id.to_owned();
        self.writer
            .write(move |connection| insert_delivery(connection, &message_id, &delivery))
            .await
    }

    async fn record_attempt(
        &self,
        attempt: Attempt,
        verdict: EndpointVerdict,
    ) -> Result<AttemptRecorded, StoreError> {
        self.writer
            .write(move |connection| record_attempt(connection, &attempt, verdict))
            .await
    }

    async fn attempts(
        &self,
        filter: AttemptFilter,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<Page<Attempt>, StoreError> {
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts
                      WHERE (?1 IS NULL OR message_id = ?1) AND (?2 IS NULL OR endpoint_id = ?2)
                        AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR id < ?4)
                      ORDER BY id DESC LIMIT ?5"
                ))?;
                let mut rows = statement.query(params![
                    filter.message,
                    filter.endpoint.as_ref().map(EndpointId::as_str),
                    filter.status.map(AttemptStatus::as_str),
                    cursor,
                    i64::try_from(limit + 1).unwrap_or(i64::MAX)
                ])?;
                let mut items = Vec::new();
                while let Some(row) = rows.next()? {
                    items.push(attempt_from_row(row)?);
                }
                Ok(Page::overfetched(items, limit, |item| item.id.to_string()))
            })
            .await
    }

    async fn failed_deliveries(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<Delivery>, StoreError> {
        let endpoint = endpoint.clone();
        self.readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries d
                       JOIN executions e ON e.id = d.execution_id
                       JOIN messages m ON m.id = d.message_id
                      WHERE d.endpoint_id = ?1 AND e.status = 'failed'
                        AND m.created_at >= ?2 AND m.created_at < ?3
                        AND NOT EXISTS (SELECT 1 FROM deliveries later
                                         JOIN executions le ON le.id = later.execution_id
                                        WHERE later.message_id = d.message_id
                                          AND later.endpoint_id = d.endpoint_id
                                          AND later.execution_id > d.execution_id
                                          AND le.status <> 'failed')
                      ORDER BY m.seq, d.execution_id"
                ))?;
                let mut rows =
                    statement.query(params![endpoint.as_str(), since.millis(), until.millis()])?;
                let mut deliveries: Vec<Delivery> = Vec::new();
                while let Some(row) = rows.next()? {
                    let delivery = delivery_from_row(row)?;
                    // One resend per message, even when it failed several times.
                    if deliveries
                        .iter()
                        .all(|earlier| earlier.message_id != delivery.message_id)
                    {
                        deliveries.push(delivery);
                    }
                }
                Ok(deliveries)
            })
            .await
    }
}
