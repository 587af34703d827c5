//! The outbound webhook tables: endpoints, messages, deliveries, attempts.

use async_trait::async_trait;
use switchboard_core::Timestamp;
use switchboard_core::ids::EndpointId;

use super::{
    Backend, Db, Row, SqlStore, Value, args, as_u32, as_u64, insert_execution, json_text, millis,
    parse_id, parse_status,
};
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

fn endpoint_from_row(row: &dyn Row) -> Result<Endpoint, StoreError> {
    let ordering = row.text(7)?;
    Ok(Endpoint {
        id: parse_endpoint_id(&row.text(0)?)?,
        settings: EndpointSettings {
            url: row.text(1)?,
            description: row.text(2)?,
            event_types: from_json(&row.text(3)?)?,
            filter: row.opt_text(4)?,
            headers: from_json(&row.text(5)?)?,
            rate_limit: row.opt_int(6)?.map(as_u32),
            ordering: DeliveryOrdering::parse(&ordering)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown ordering `{ordering}`")))?,
            retry_schedule: row.opt_text(8)?.map(|text| from_json(&text)).transpose()?,
            disabled: row.flag(9)?,
            metadata: from_json(&row.text(12)?)?,
            tenant: row.opt_text(13)?,
        },
        disabled_reason: row.opt_text(10)?,
        failing_since: row.opt_int(11)?.map(Timestamp),
        created_at: Timestamp(row.int(14)?),
        updated_at: Timestamp(row.int(15)?),
    })
}

/// An endpoint's id and settings as the values of the columns `id` to `tenant`, in
/// table order (`?1` to `?12` of the insert and the update).
fn endpoint_row(
    id: &EndpointId,
    settings: &EndpointSettings,
) -> Result<Vec<Value<'static>>, StoreError> {
    Ok(vec![
        id.to_string().into(),
        settings.url.clone().into(),
        settings.description.clone().into(),
        serde_json::to_string(&settings.event_types)?.into(),
        settings.filter.clone().into(),
        serde_json::to_string(&settings.headers)?.into(),
        settings.rate_limit.into(),
        settings.ordering.as_str().into(),
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

fn endpoint(db: &dyn Db, id: &str) -> Result<Option<Endpoint>, StoreError> {
    db.row(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?1"),
        args![id],
        endpoint_from_row,
    )
}

fn endpoints_where(
    db: &dyn Db,
    condition: &str,
    values: &[Value<'_>],
    limit: usize,
) -> Result<Vec<Endpoint>, StoreError> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints {condition} ORDER BY id LIMIT {}",
        i64::try_from(limit).unwrap_or(i64::MAX)
    );
    db.rows(&sql, values, endpoint_from_row)
}

fn secrets(db: &dyn Db, id: &str) -> Result<Option<EndpointSecrets>, StoreError> {
    db.row(
        "SELECT secret, previous_secret, previous_secret_expires_at FROM endpoints WHERE id = ?1",
        args![id],
        |row| {
            let previous = match (row.opt_text(1)?, row.opt_int(2)?) {
                (Some(key), Some(expires_at)) => Some(PreviousSecret {
                    key,
                    expires_at: Timestamp(expires_at),
                }),
                _ => None,
            };
            Ok(EndpointSecrets {
                key: row.text(0)?,
                previous,
            })
        },
    )
}

const MESSAGE_COLUMNS: &str = "seq, id, event_type, payload, tenant, created_at";

fn message_from_row(row: &dyn Row) -> Result<(i64, Message), StoreError> {
    Ok((
        row.int(0)?,
        Message {
            id: row.text(1)?,
            event_type: row.text(2)?,
            payload: row.json(3)?,
            tenant: row.opt_text(4)?,
            created_at: Timestamp(row.int(5)?),
        },
    ))
}

const DELIVERY_COLUMNS: &str = "d.message_id, d.endpoint_id, d.execution_id, e.status, e.run_at";

fn delivery_from_row(row: &dyn Row) -> Result<Delivery, StoreError> {
    let status = parse_status(&row.text(3)?)?;
    Ok(Delivery {
        message_id: row.text(0)?,
        endpoint_id: parse_endpoint_id(&row.text(1)?)?,
        execution_id: parse_id(&row.text(2)?)?,
        status,
        next_attempt_at: (status == ExecutionStatus::Retrying)
            .then(|| row.int(4).map(Timestamp))
            .transpose()?,
    })
}

fn deliveries_of(db: &dyn Db, message: &str) -> Result<Vec<Delivery>, StoreError> {
    db.rows(
        &format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN executions e ON e.id = d.execution_id
              WHERE d.message_id = ?1 ORDER BY d.execution_id"
        ),
        args![message],
        delivery_from_row,
    )
}

fn message(db: &dyn Db, id: &str) -> Result<Option<MessageCreated>, StoreError> {
    let found = db.row(
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
        args![id],
        message_from_row,
    )?;
    let Some((_, message)) = found else {
        return Ok(None);
    };
    Ok(Some(MessageCreated {
        deliveries: deliveries_of(db, &message.id)?,
        message,
        duplicate: false,
    }))
}

fn insert_delivery(
    db: &dyn Db,
    message_id: &str,
    delivery: &NewDelivery,
) -> Result<Delivery, StoreError> {
    insert_execution(db, &delivery.execution)?;
    db.execute(
        "INSERT INTO deliveries (execution_id, message_id, endpoint_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        args![
            delivery.execution.id.as_str(),
            message_id,
            delivery.endpoint.as_str(),
            delivery.execution.created_at.millis()
        ],
    )?;
    Ok(Delivery {
        message_id: message_id.to_owned(),
        endpoint_id: delivery.endpoint.clone(),
        execution_id: delivery.execution.id.clone(),
        status: ExecutionStatus::Queued,
        next_attempt_at: None,
    })
}

const ATTEMPT_COLUMNS: &str = "id, message_id, endpoint_id, execution_id, attempt, url, at, status, response_status, latency_ms, response_headers, response_body, body_truncated, error_kind, error";

fn attempt_from_row(row: &dyn Row) -> Result<Attempt, StoreError> {
    let status = row.text(7)?;
    Ok(Attempt {
        id: row.int(0)?,
        message_id: row.text(1)?,
        endpoint_id: parse_endpoint_id(&row.text(2)?)?,
        execution_id: parse_id(&row.text(3)?)?,
        attempt: as_u32(row.int(4)?),
        url: row.text(5)?,
        at: Timestamp(row.int(6)?),
        status: AttemptStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown attempt status `{status}`")))?,
        response_status: row
            .opt_int(8)?
            .and_then(|status| u16::try_from(status).ok()),
        latency_ms: as_u64(row.int(9)?),
        response_headers: row.json(10)?,
        response_body: row.opt_text(11)?,
        body_truncated: row.flag(12)?,
        error_kind: row.opt_text(13)?,
        error: row.opt_text(14)?,
    })
}

fn record_attempt(
    db: &dyn Db,
    attempt: &Attempt,
    verdict: EndpointVerdict,
) -> Result<AttemptRecorded, StoreError> {
    db.execute(
        "INSERT INTO delivery_attempts (execution_id, message_id, endpoint_id, attempt, url, at, status,
            response_status, latency_ms, response_headers, response_body, body_truncated, error_kind, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        args![
            attempt.execution_id.as_str(),
            &attempt.message_id,
            attempt.endpoint_id.as_str(),
            attempt.attempt,
            &attempt.url,
            attempt.at.millis(),
            attempt.status.as_str(),
            attempt.response_status,
            attempt.latency_ms,
            json_text(&attempt.response_headers),
            attempt.response_body.as_deref(),
            attempt.body_truncated,
            attempt.error_kind.as_deref(),
            attempt.error.as_deref(),
        ],
    )?;
    let id = attempt.endpoint_id.as_str();
    let at = attempt.at.millis();
    if attempt.status == AttemptStatus::Succeeded {
        db.execute(
            "UPDATE endpoints SET failing_since = NULL WHERE id = ?1",
            args![id],
        )?;
        return Ok(AttemptRecorded { disabled: None });
    }
    let reason = match verdict {
        EndpointVerdict::Disable => Some(String::from("the endpoint answered 410 Gone")),
        EndpointVerdict::Track { disable_after } => {
            // The streak starts at this attempt unless it already runs.
            let since = db
                .row(
                    "UPDATE endpoints SET failing_since = COALESCE(failing_since, ?2) WHERE id = ?1
                     RETURNING failing_since",
                    args![id, at],
                    |row| row.int(0),
                )?
                .unwrap_or(at);
            (at - since >= millis(disable_after)).then(|| {
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
    let changed = db.execute(
        "UPDATE endpoints SET disabled = 1, disabled_reason = ?2, updated_at = ?3
          WHERE id = ?1 AND disabled = 0",
        args![id, &reason, at],
    )?;
    Ok(AttemptRecorded {
        disabled: (changed > 0).then_some(reason),
    })
}

#[async_trait]
impl<B: Backend> OutboundStore for SqlStore<B> {
    async fn create_endpoint(&self, endpoint: Endpoint, secret: String) -> Result<(), StoreError> {
        self.backend
            .write(move |db| {
                let mut values = endpoint_row(&endpoint.id, &endpoint.settings)?;
                values.extend([
                    Value::from(secret.clone()),
                    endpoint.created_at.millis().into(),
                ]);
                db.execute(
                    "INSERT INTO endpoints (id, url, description, event_types, filter, headers, rate_limit,
                        ordering, retry_schedule, disabled, metadata, tenant, secret, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
                    &values,
                )?;
                Ok(())
            })
            .await
    }

    async fn endpoint(&self, id: &EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let id = id.clone();
        self.backend.read(move |db| endpoint(db, id.as_str())).await
    }

    async fn endpoints(
        &self,
        tenant: Option<String>,
        limit: usize,
        cursor: Option<EndpointId>,
    ) -> Result<Page<Endpoint>, StoreError> {
        self.backend
            .read(move |db| {
                let mut conditions = Vec::new();
                let mut values: Vec<Value<'_>> = Vec::new();
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
                let items = endpoints_where(db, &condition, &values, limit + 1)?;
                Ok(Page::overfetched(items, limit, |item| item.id.to_string()))
            })
            .await
    }

    async fn subscribers(&self, tenant: Option<String>) -> Result<Vec<Endpoint>, StoreError> {
        self.backend
            .read(move |db| match tenant {
                Some(tenant) => endpoints_where(
                    db,
                    "WHERE disabled = 0 AND tenant = ?1",
                    args![tenant],
                    usize::MAX >> 1,
                ),
                None => endpoints_where(
                    db,
                    "WHERE disabled = 0 AND tenant IS NULL",
                    args![],
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
        self.backend
            .write(move |db| {
                let mut values = endpoint_row(&id, &settings)?;
                values.push(now.millis().into());
                let changed = db.execute(
                    "UPDATE endpoints SET url = ?2, description = ?3, event_types = ?4, filter = ?5,
                        headers = ?6, rate_limit = ?7, ordering = ?8, retry_schedule = ?9,
                        disabled = ?10, metadata = ?11, tenant = ?12, updated_at = ?13,
                        disabled_reason = CASE WHEN ?10 = 1 THEN disabled_reason END,
                        failing_since = CASE WHEN ?10 = 1 OR disabled = 0 THEN failing_since END
                      WHERE id = ?1",
                    &values,
                )?;
                if changed == 0 {
                    return Ok(None);
                }
                endpoint(db, id.as_str())
            })
            .await
    }

    async fn delete_endpoint(&self, id: &EndpointId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.backend
            .write(move |db| {
                Ok(db.execute("DELETE FROM endpoints WHERE id = ?1", args![id.as_str()])? > 0)
            })
            .await
    }

    async fn endpoint_secrets(
        &self,
        id: &EndpointId,
    ) -> Result<Option<EndpointSecrets>, StoreError> {
        let id = id.clone();
        self.backend.read(move |db| secrets(db, id.as_str())).await
    }

    async fn rotate_secret(
        &self,
        id: &EndpointId,
        key: String,
        previous_until: Timestamp,
    ) -> Result<Option<EndpointSecrets>, StoreError> {
        let id = id.clone();
        self.backend
            .write(move |db| {
                let changed = db.execute(
                    "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = ?3,
                        secret = ?2 WHERE id = ?1",
                    args![id.as_str(), &key, previous_until.millis()],
                )?;
                if changed == 0 {
                    return Ok(None);
                }
                secrets(db, id.as_str())
            })
            .await
    }

    async fn create_message(
        &self,
        new: Message,
        deliveries: Vec<NewDelivery>,
    ) -> Result<MessageCreated, StoreError> {
        self.backend
            .write(move |db| {
                if let Some(mut first) = message(db, &new.id)? {
                    first.duplicate = true;
                    return Ok(first);
                }
                db.execute(
                    "INSERT INTO messages (id, event_type, payload, tenant, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    args![
                        &new.id,
                        &new.event_type,
                        json_text(&new.payload),
                        new.tenant.as_deref(),
                        new.created_at.millis()
                    ],
                )?;
                let deliveries = deliveries
                    .iter()
                    .map(|delivery| insert_delivery(db, &new.id, delivery))
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
        self.backend.read(move |db| message(db, &id)).await
    }

    async fn messages(
        &self,
        event_type: Option<String>,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<Page<Message>, StoreError> {
        self.backend
            .read(move |db| {
                let read = db.rows(
                    &format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages
                          WHERE (CAST(?1 AS TEXT) IS NULL OR event_type = ?1)
                            AND (CAST(?2 AS BIGINT) IS NULL OR seq < ?2)
                          ORDER BY seq DESC LIMIT ?3"
                    ),
                    args![event_type.as_deref(), cursor, limit + 1],
                    message_from_row,
                )?;
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
        self.backend
            .write(move |db| insert_delivery(db, &message_id, &delivery))
            .await
    }

    async fn record_attempt(
        &self,
        attempt: Attempt,
        verdict: EndpointVerdict,
    ) -> Result<AttemptRecorded, StoreError> {
        self.backend
            .write(move |db| record_attempt(db, &attempt, verdict))
            .await
    }

    async fn attempts(
        &self,
        filter: AttemptFilter,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<Page<Attempt>, StoreError> {
        self.backend
            .read(move |db| {
                let items = db.rows(
                    &format!(
                        "SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts
                          WHERE (CAST(?1 AS TEXT) IS NULL OR message_id = ?1)
                            AND (CAST(?2 AS TEXT) IS NULL OR endpoint_id = ?2)
                            AND (CAST(?3 AS TEXT) IS NULL OR status = ?3)
                            AND (CAST(?4 AS BIGINT) IS NULL OR id < ?4)
                          ORDER BY id DESC LIMIT ?5"
                    ),
                    args![
                        filter.message.as_deref(),
                        filter.endpoint.as_ref().map(EndpointId::as_str),
                        filter.status.map(AttemptStatus::as_str),
                        cursor,
                        limit + 1
                    ],
                    attempt_from_row,
                )?;
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
        self.backend
            .read(move |db| {
                let failed = db.rows(
                    &format!(
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
                    ),
                    args![endpoint.as_str(), since.millis(), until.millis()],
                    delivery_from_row,
                )?;
                let mut deliveries: Vec<Delivery> = Vec::new();
                for delivery in failed {
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
