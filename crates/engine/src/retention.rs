//! Retention: ended executions older than `retention` are deleted, with their step
//! records and logs, in small batches, so storage stays bounded under constant load and
//! the writer is never held for long.

use std::sync::Arc;

use switchboard_core::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// The most executions one batch deletes.
const BATCH: usize = 500;

/// Prunes every `retention_interval` until `shutdown`, while this node leads.
pub(crate) async fn prune(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(engine.config.retention_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !engine.leads() {
            continue;
        }
        let now = Timestamp::now();
        let ended_before = Timestamp(
            now.millis() - i64::try_from(engine.config.retention.as_millis()).unwrap_or(i64::MAX),
        );
        loop {
            match engine.store.prune(ended_before, now, BATCH).await {
                Ok(pruned) => {
                    engine.metrics.executions_pruned(pruned.executions);
                    if pruned.executions > 0 {
                        tracing::debug!(
                            count = pruned.executions,
                            "Deleted executions past retention."
                        );
                    }
                    if [
                        pruned.executions,
                        pruned.dedupe_keys,
                        pruned.messages,
                        pruned.events,
                    ]
                    .iter()
                    .all(|&count| count < BATCH as u64)
                    {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "Could not delete executions past retention.");
                    break;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            // Let other writes in between batches.
            tokio::task::yield_now().await;
        }
    }
}
