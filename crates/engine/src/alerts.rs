//! Alert rules, evaluated against the store every `interval`.
//!
//! An alert fires when its condition starts to hold and resolves when it stops; each
//! change is recorded in the store together with one execution of each of its notify
//! flows, in one transaction ([`Store::change_alert`]). So a notification is never sent
//! twice for one change, never lost to a crash, and not repeated while the condition
//! holds, across restarts too.
//!
//! Flows started by alerts are never watched by alerts: a failing notification must not
//! fire the alert about failures that it is reporting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::{HumanDuration, Timestamp};
use switchboard_project::{Alert, AlertCondition, Integration, Trigger};
use switchboard_store::{AlertChange, AlertState, NewExecution, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// What one evaluation of an alert found.
struct Observation {
    firing: bool,
    summary: String,
    value: f64,
}

/// Evaluates every alert of the project every `interval` until `shutdown`, while this
/// node leads.
pub async fn watch(engine: Arc<Engine>, interval: Duration, shutdown: CancellationToken) {
    let mut known: Option<HashMap<(String, String), AlertState>> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !engine.leads() {
            // Another node watches; its changes are read again when this one leads.
            known = None;
            continue;
        }
        let known = match &mut known {
            Some(known) => known,
            None => match engine.store.alert_states().await {
                Ok(states) => known.insert(
                    states
                        .into_iter()
                        .map(|state| ((state.integration.clone(), state.alert.clone()), state))
                        .collect(),
                ),
                Err(error) => {
                    tracing::warn!(%error, "Could not read alert states; alerts wait.");
                    continue;
                }
            },
        };
        // Read each round: a reload may change the alerts.
        let project = engine.project();
        let mut alerts: Vec<(Arc<Integration>, Arc<Alert>)> = Vec::new();
        for integration in project.integrations.values() {
            for alert in &integration.alerts {
                alerts.push((Arc::clone(integration), Arc::clone(alert)));
            }
        }
        for (integration, alert) in &alerts {
            if let Err(error) = evaluate(&engine, integration, alert, known).await {
                tracing::warn!(%error, alert = %alert.name, integration = %integration.name, "Could not evaluate an alert.");
            }
        }
    }
}

async fn evaluate(
    engine: &Engine,
    integration: &Integration,
    alert: &Alert,
    known: &mut HashMap<(String, String), AlertState>,
) -> Result<(), StoreError> {
    let now = Timestamp::now();
    let observation = observe(engine.store.as_ref(), integration, alert, now).await?;
    engine
        .metrics
        .alert_evaluated(&integration.name, &alert.name, observation.firing);
    let key = (integration.name.clone(), alert.name.clone());
    let previous = known.get(&key);
    if previous.is_some_and(|state| state.firing) == observation.firing {
        return Ok(());
    }
    let state = AlertState {
        integration: integration.name.clone(),
        alert: alert.name.clone(),
        firing: observation.firing,
        since: now,
        summary: observation.summary.clone(),
    };
    let notice = notice(alert, &observation, previous.map(|state| state.since), now);
    let notifications = alert
        .notify
        .iter()
        .map(|flow| {
            let trigger = json!({"kind": "alert", "alert": alert.name, "status": notice["status"]});
            match engine.project().flow(&integration.name, flow) {
                Some(flow) => engine.prepare_or_plain(flow, trigger, notice.clone()),
                None => NewExecution::new(&integration.name, flow, trigger, notice.clone()),
            }
        })
        .collect();
    let changed = engine
        .store
        .change_alert(AlertChange {
            state: state.clone(),
            notifications,
        })
        .await?;
    if changed {
        let status = if observation.firing {
            "firing"
        } else {
            "resolved"
        };
        tracing::warn!(alert = %alert.name, integration = %integration.name, status, summary = %observation.summary, "Alert changed.");
        engine.wake.notify_one();
    }
    known.insert(key, state);
    Ok(())
}

/// The flows an alert looks at: its flow, or every flow of the integration that alerts
/// do not start.
fn watched_flows(integration: &Integration, alert: &Alert) -> Vec<String> {
    match &alert.flow {
        Some(flow) => vec![flow.clone()],
        None => integration
            .flows
            .values()
            .filter(|flow| !matches!(flow.trigger, Trigger::Alert))
            .map(|flow| flow.name.clone())
            .collect(),
    }
}

async fn observe(
    store: &dyn Store,
    integration: &Integration,
    alert: &Alert,
    now: Timestamp,
) -> Result<Observation, StoreError> {
    let flows = watched_flows(integration, alert);
    let scope = match &alert.flow {
        Some(flow) => format!("{}/{flow}", integration.name),
        None => format!("{} (every flow)", integration.name),
    };
    let since = |within: Duration| {
        Timestamp(now.millis() - i64::try_from(within.as_millis()).unwrap_or(i64::MAX))
    };
    let observation = match alert.condition {
        AlertCondition::Failures { count, within } => {
            let stats = store
                .window_stats(&integration.name, &flows, since(within))
                .await?;
            Observation {
                firing: stats.failed >= count,
                summary: format!(
                    "{} executions of {scope} failed within {} (fires at {count})",
                    stats.failed,
                    HumanDuration(within)
                ),
                value: stats.failed as f64,
            }
        }
        AlertCondition::ErrorRate {
            above,
            within,
            min_executions,
        } => {
            let stats = store
                .window_stats(&integration.name, &flows, since(within))
                .await?;
            let rate = if stats.finished == 0 {
                0.0
            } else {
                stats.failed as f64 / stats.finished as f64
            };
            Observation {
                firing: stats.finished >= min_executions && rate > above,
                summary: format!(
                    "{:.1}% of {} executions of {scope} failed within {} (fires above {:.1}% of at least {min_executions})",
                    rate * 100.0,
                    stats.finished,
                    HumanDuration(within),
                    above * 100.0
                ),
                value: rate,
            }
        }
        AlertCondition::P95Duration { above, within } => {
            let stats = store
                .window_stats(&integration.name, &flows, since(within))
                .await?;
            let p95 =
                Duration::from_millis(stats.p95_ms.map_or(0, |ms| u64::try_from(ms).unwrap_or(0)));
            Observation {
                firing: stats.p95_ms.is_some() && p95 > above,
                summary: format!(
                    "p95 execution time of {scope} within {} is {} over {} executions (fires above {})",
                    HumanDuration(within),
                    HumanDuration(p95),
                    stats.finished,
                    HumanDuration(above)
                ),
                value: p95.as_secs_f64(),
            }
        }
        AlertCondition::QueueAge { above } => {
            let queue = store.queue(now).await?;
            let oldest = queue
                .iter()
                .filter(|queued| {
                    queued.integration == integration.name && flows.contains(&queued.flow)
                })
                .map(|queued| now.duration_since(queued.oldest_runnable_since))
                .max()
                .unwrap_or_default();
            Observation {
                firing: oldest > above,
                summary: format!(
                    "the oldest waiting execution of {scope} has waited {} (fires above {})",
                    HumanDuration(oldest),
                    HumanDuration(above)
                ),
                value: oldest.as_secs_f64(),
            }
        }
        AlertCondition::EndpointDisabled { ref tenant } => {
            let mut disabled = Vec::new();
            let mut cursor = None;
            loop {
                let page = store.endpoints(tenant.clone(), 500, cursor).await?;
                disabled.extend(
                    page.items
                        .into_iter()
                        .filter(|endpoint| endpoint.settings.disabled),
                );
                match page.next_cursor.and_then(|next| next.parse().ok()) {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let named: Vec<String> = disabled
                .iter()
                .take(5)
                .map(|endpoint| {
                    let why = endpoint
                        .disabled_reason
                        .as_deref()
                        .unwrap_or("an operator disabled it");
                    format!("{} {} ({why})", endpoint.id, endpoint.settings.url)
                })
                .collect();
            let whose = tenant
                .as_ref()
                .map_or(String::new(), |tenant| format!(" of tenant `{tenant}`"));
            Observation {
                firing: !disabled.is_empty(),
                summary: match disabled.len() {
                    0 => format!("no outbound endpoint{whose} is disabled"),
                    count => format!(
                        "{count} outbound endpoint(s){whose} disabled: {}{}",
                        named.join(", "),
                        if count > named.len() { ", …" } else { "" }
                    ),
                },
                value: disabled.len() as f64,
            }
        }
    };
    Ok(observation)
}

/// The input of a notify flow.
fn notice(
    alert: &Alert,
    observation: &Observation,
    fired_at: Option<Timestamp>,
    now: Timestamp,
) -> Value {
    let status = if observation.firing {
        "firing"
    } else {
        "resolved"
    };
    json!({
        "alert": alert.name,
        "integration": alert.integration,
        "flow": alert.flow,
        "description": alert.description,
        "status": status,
        "condition": alert.condition.kind(),
        "value": observation.value,
        "summary": observation.summary,
        "since": if observation.firing { now } else { fired_at.unwrap_or(now) },
        "at": now,
    })
}
