//! What only the SQLite backend does: one process per data folder, group commits, and
//! its history of schema versions.

use std::sync::Arc;

use rusqlite::Connection;
use serde_json::json;
use switchboard_core::Timestamp;
use switchboard_core::ids::NodeId;

use super::{DATABASE_FILE, MIGRATIONS};
use crate::sql::tests::{lease_now, new_execution};
use crate::{SqliteStore, Store, StoreError};

#[tokio::test]
async fn a_data_folder_opens_in_one_process_only() {
    let folder = tempfile::tempdir().unwrap();
    let _store = SqliteStore::open(folder.path(), Arc::default()).unwrap();
    assert!(matches!(
        SqliteStore::open(folder.path(), Arc::default()),
        Err(StoreError::Locked(_))
    ));
}

#[tokio::test]
async fn the_queue_counts_runnable_executions_per_flow_and_commits_are_measured() {
    let folder = tempfile::tempdir().unwrap();
    let metrics = Arc::new(switchboard_telemetry::Metrics::new());
    let store = SqliteStore::open(folder.path(), Arc::clone(&metrics)).unwrap();
    let first = new_execution("a");
    let oldest = first.created_at;
    store.enqueue(first).await.unwrap();
    store.enqueue(new_execution("a")).await.unwrap();
    store.enqueue(new_execution("b")).await.unwrap();
    let leased = lease_now(&store, &NodeId::generate(), 1).await;
    assert_eq!(leased.len(), 1, "the oldest is leased and leaves the queue");

    let mut queue = store.queue(Timestamp::now()).await.unwrap();
    queue.sort_by(|left, right| left.flow.cmp(&right.flow));
    let depths: Vec<_> = queue
        .iter()
        .map(|queued| (queued.flow.as_str(), queued.depth))
        .collect();
    assert_eq!(depths, [("a", 1), ("b", 1)]);
    assert!(queue[0].oldest_runnable_since >= oldest);
    assert!(
        store.queue(Timestamp(0)).await.unwrap().is_empty(),
        "nothing was runnable in 1970"
    );

    metrics.upkeep();
    let text = metrics.render();
    let commits = text
        .lines()
        .find_map(|line| line.strip_prefix("switchboard_store_commit_batch_writes_count "))
        .unwrap();
    assert!(commits.parse::<u64>().unwrap() >= 4, "{text}");
}

#[tokio::test]
async fn version_16_moves_each_execution_payload_out_of_its_row() {
    let folder = tempfile::tempdir().unwrap();
    {
        let connection = Connection::open(folder.path().join(DATABASE_FILE)).unwrap();
        connection
            .execute_batch("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
            .unwrap();
        for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version < 16) {
            connection.execute_batch(sql).unwrap();
            connection
                .execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)",
                    [version],
                )
                .unwrap();
        }
        connection
            .execute(
                "INSERT INTO executions (id, integration, flow, status, trigger, input, created_at, run_at)
                 VALUES ('exe_01JZ0000000000000000000000', 'shop', 'a', 'queued', '{\"kind\":\"webhook\"}', '{\"n\":7}', 1, 1)",
                [],
            )
            .unwrap();
    }
    let store = SqliteStore::open(folder.path(), Arc::default()).unwrap();
    let id = "exe_01JZ0000000000000000000000".parse().unwrap();
    let detail = store.execution(&id).await.unwrap().unwrap();
    assert_eq!(detail.trigger, json!({"kind": "webhook"}));
    assert_eq!(detail.input, json!({"n": 7}));
    let leased = lease_now(&store, &NodeId::generate(), 1).await;
    assert_eq!(
        leased[0].input,
        json!({"n": 7}),
        "a lease reads the moved payload"
    );
}
