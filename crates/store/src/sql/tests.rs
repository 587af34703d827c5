use serde_json::json;

use std::sync::Arc;

use switchboard_core::ids::NodeId;
use switchboard_core::{ExecutionId, Timestamp};

use super::{Backend, SqlStore, args};
use crate::records::{
    AlertChange, AlertState, Checkpoint, Checkpointed, ConcurrencyGroup, Control, DedupeKey, End,
    ErrorRecord, ExecutionFilter, ExecutionStatus, Finish, LeasedExecution, LogRecord,
    NewExecution, Pruned, Slots, StepRecord, StepStatus, ThrottleGroup, WindowStats,
};
use crate::{PostgresStore, SqliteStore, Store, StoreError};

pub(crate) fn new_execution(flow: &str) -> NewExecution {
    NewExecution::new("shop", flow, json!({"kind": "webhook"}), json!({"n": 1}))
}

/// Leases up to `limit` executions runnable now.
pub(crate) async fn lease_now<B: Backend>(
    store: &SqlStore<B>,
    node: &NodeId,
    limit: usize,
) -> Vec<LeasedExecution> {
    store
        .lease(node, Slots::each(limit), Timestamp::now(), soon())
        .await
        .unwrap()
}

fn step(seq: u32, id: &str) -> StepRecord {
    let now = Timestamp::now();
    StepRecord {
        seq,
        step_id: id.to_owned(),
        kind: String::from("http"),
        status: StepStatus::Succeeded,
        attempt: 1,
        input: json!({"url": "http://x"}),
        output: Some(json!({"status": 200})),
        error: None,
        started_at: now,
        finished_at: now,
        duration_ms: 0,
    }
}

fn soon() -> Timestamp {
    Timestamp::now().after(std::time::Duration::from_secs(60))
}

async fn executions_are_leased_once_checkpointed_and_finished<B: Backend>(store: Arc<SqlStore<B>>) {
    let node = NodeId::generate();
    let id = store.enqueue(new_execution("a")).await.unwrap().id;

    let leased = lease_now(&store, &node, 10).await;
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].attempt, 1);
    assert!(
        lease_now(&store, &node, 10).await.is_empty(),
        "a leased execution is not leased again"
    );

    let lease = leased[0].lease.clone();
    let checkpoint = Checkpoint {
        execution: id.clone(),
        lease: lease.clone(),
        steps: vec![step(0, "call")],
        logs: vec![],
        end: None,
        follow_ups: vec![],
        events: vec![],
        state: vec![],
        response: None,
    };
    store.checkpoint(checkpoint).await.unwrap();
    let finish = Checkpoint {
        execution: id.clone(),
        lease,
        follow_ups: vec![],
        events: vec![],
        state: vec![],
        response: None,
        steps: vec![],
        logs: vec![LogRecord::from_row(
            0,
            1,
            "info",
            Some("note".into()),
            "done".into(),
        )],
        end: Some(End::Finished(Finish {
            status: ExecutionStatus::Succeeded,
            error: None,
            output: None,
        })),
    };
    store.checkpoint(finish).await.unwrap();

    let detail = store.execution(&id).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, ExecutionStatus::Succeeded);
    assert_eq!(detail.steps.len(), 1);
    assert_eq!(detail.log[0].message, "done");
}

async fn a_lost_lease_refuses_checkpoints_and_orphans_resume_after_their_steps<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    let (first, second) = (NodeId::generate(), NodeId::generate());
    let id = store.enqueue(new_execution("a")).await.unwrap().id;
    let leased = lease_now(&store, &first, 1).await;
    let old_lease = leased[0].lease.clone();
    let checkpoint = Checkpoint {
        execution: id.clone(),
        lease: old_lease.clone(),
        steps: vec![step(0, "call")],
        logs: vec![],
        end: None,
        follow_ups: vec![],
        events: vec![],
        state: vec![],
        response: None,
    };
    store.checkpoint(checkpoint.clone()).await.unwrap();

    let expired = Timestamp::now().after(std::time::Duration::from_secs(120));
    assert_eq!(store.requeue_expired(expired).await.unwrap(), 1);
    let again = lease_now(&store, &second, 1).await;
    assert_eq!(again[0].attempt, 2);
    assert_eq!(
        again[0].finished_steps.len(),
        1,
        "the finished step is handed back"
    );
    assert_eq!(again[0].next_step_seq, 1);

    let error = store.checkpoint(checkpoint).await.unwrap_err();
    assert!(matches!(error, StoreError::LeaseLost(_)), "{error}");
    let lost = store
        .renew(vec![(id.clone(), old_lease)], soon())
        .await
        .unwrap();
    assert_eq!(lost, vec![id]);
}

async fn expired_leases_are_requeued<B: Backend>(store: Arc<SqlStore<B>>) {
    let node = NodeId::generate();
    store.enqueue(new_execution("a")).await.unwrap();
    let now = Timestamp::now();
    store.lease(&node, Slots::each(1), now, now).await.unwrap();
    let later = Timestamp::now().after(std::time::Duration::from_secs(1));
    assert_eq!(store.requeue_expired(later).await.unwrap(), 1);
    assert_eq!(lease_now(&store, &node, 1).await.len(), 1);
}

async fn listing_pages_newest_first_with_filters<B: Backend>(store: Arc<SqlStore<B>>) {
    let mut ids = Vec::new();
    for index in 0..5 {
        ids.push(
            store
                .enqueue(new_execution(if index % 2 == 0 { "even" } else { "odd" }))
                .await
                .unwrap()
                .id,
        );
    }
    let first = store
        .executions(ExecutionFilter::default(), 2, None)
        .await
        .unwrap();
    assert_eq!(
        first
            .items
            .iter()
            .map(|item| item.id.clone())
            .collect::<Vec<_>>(),
        vec![ids[4].clone(), ids[3].clone()]
    );
    let cursor = first.next_cursor.unwrap().parse().unwrap();
    let second = store
        .executions(ExecutionFilter::default(), 2, Some(cursor))
        .await
        .unwrap();
    assert_eq!(second.items[0].id, ids[2]);
    let filter = ExecutionFilter {
        flow: Some("even".into()),
        status: Some(ExecutionStatus::Queued),
        ..Default::default()
    };
    let even = store.executions(filter, 10, None).await.unwrap();
    assert_eq!(even.items.len(), 3);
    assert!(even.next_cursor.is_none());
}

async fn concurrent_writes_share_commits_and_all_land<B: Backend>(store: Arc<SqlStore<B>>) {
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.enqueue(new_execution("a")).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let page = store
        .executions(ExecutionFilter::default(), 500, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 200);
}

/// Runs every queued execution to `status` and returns how many ran.
async fn finish_all<B: Backend>(store: &SqlStore<B>, status: ExecutionStatus) -> usize {
    let leased = lease_now(store, &NodeId::generate(), 100).await;
    for execution in &leased {
        let checkpoint = Checkpoint {
            execution: execution.id.clone(),
            lease: execution.lease.clone(),
            follow_ups: vec![],
            events: vec![],
            state: vec![],
            response: None,
            steps: vec![step(0, "call")],
            logs: vec![],
            end: Some(End::Finished(Finish {
                status,
                error: None,
                output: None,
            })),
        };
        store.checkpoint(checkpoint).await.unwrap();
    }
    leased.len()
}

async fn window_stats_count_ended_executions_of_the_named_flows<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    let since = Timestamp::now();
    for _ in 0..3 {
        store.enqueue(new_execution("a")).await.unwrap();
    }
    store.enqueue(new_execution("b")).await.unwrap();
    assert_eq!(finish_all(&store, ExecutionStatus::Failed).await, 4);
    store.enqueue(new_execution("a")).await.unwrap();
    assert_eq!(finish_all(&store, ExecutionStatus::Succeeded).await, 1);
    store.enqueue(new_execution("a")).await.unwrap();

    let a = store
        .window_stats("shop", &["a".into()], since)
        .await
        .unwrap();
    assert_eq!(
        (a.finished, a.failed),
        (4, 3),
        "the queued one has not ended"
    );
    assert!(a.p95_ms.unwrap() >= 0);
    let both = store
        .window_stats("shop", &["a".into(), "b".into()], since)
        .await
        .unwrap();
    assert_eq!((both.finished, both.failed), (5, 4));
    let later = Timestamp::now().after(std::time::Duration::from_secs(1));
    let none = store
        .window_stats("shop", &["a".into()], later)
        .await
        .unwrap();
    assert_eq!(none, WindowStats::default());
    assert_eq!(
        store.window_stats("shop", &[], since).await.unwrap(),
        WindowStats::default()
    );
}

async fn an_alert_change_is_recorded_once_with_its_notifications<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    let change = |firing: bool| AlertChange {
        state: AlertState {
            integration: String::from("shop"),
            alert: String::from("failing"),
            firing,
            since: Timestamp::now(),
            summary: String::from("3 failed"),
        },
        notifications: vec![new_execution("alert.failing.webhook.0")],
    };
    assert!(
        !store.change_alert(change(false)).await.unwrap(),
        "never fired: nothing to resolve"
    );
    assert!(store.change_alert(change(true)).await.unwrap());
    assert!(
        !store.change_alert(change(true)).await.unwrap(),
        "no repeat while firing"
    );
    let queued = lease_now(&store, &NodeId::generate(), 10).await;
    assert_eq!(queued.len(), 1, "one notification for one firing");
    let states = store.alert_states().await.unwrap();
    assert_eq!(states.len(), 1);
    assert!(states[0].firing);
    assert!(store.change_alert(change(false)).await.unwrap(), "resolves");
    assert!(!store.alert_states().await.unwrap()[0].firing);
    assert_eq!(lease_now(&store, &NodeId::generate(), 10).await.len(), 1);
}

async fn a_retry_is_a_timer_in_the_store_that_holds_no_lease<B: Backend>(store: Arc<SqlStore<B>>) {
    let node = NodeId::generate();
    let id = store.enqueue(new_execution("a")).await.unwrap().id;
    let t0 = Timestamp::now();
    let leased = store
        .lease(&node, Slots::each(1), t0, soon())
        .await
        .unwrap();
    let mut failed = step(0, "call");
    failed.status = StepStatus::Failed;
    let error = ErrorRecord {
        code: String::from("http_status"),
        message: String::from("POST http://x answered 503"),
        step: Some(String::from("call")),
    };
    let at = t0.after(std::time::Duration::from_secs(10));
    let retry = Checkpoint {
        execution: id.clone(),
        lease: leased[0].lease.clone(),
        follow_ups: vec![],
        events: vec![],
        state: vec![],
        response: None,
        steps: vec![failed],
        logs: vec![],
        end: Some(End::Retry {
            at,
            error: error.clone(),
        }),
    };
    store.checkpoint(retry).await.unwrap();

    let waiting = store.execution(&id).await.unwrap().unwrap().summary;
    assert_eq!(waiting.status, ExecutionStatus::Retrying);
    assert_eq!(waiting.next_attempt_at, Some(at));
    assert_eq!(waiting.error, Some(error));
    assert_eq!(
        store.next_run_at(t0).await.unwrap(),
        Some(at),
        "the next timer"
    );
    assert_eq!(store.next_run_at(at).await.unwrap(), None, "none after it");
    let just_before = Timestamp(at.millis() - 1);
    assert!(
        store
            .lease(&node, Slots::each(1), just_before, soon())
            .await
            .unwrap()
            .is_empty(),
        "not before its time"
    );
    assert!(
        store.queue(just_before).await.unwrap().is_empty(),
        "not runnable yet"
    );
    let again = store
        .lease(&node, Slots::each(1), at, soon())
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].failed_attempts.get("call"), Some(&1));
    assert!(
        again[0].finished_steps.is_empty(),
        "a failed step is tried again"
    );
}

async fn a_dedupe_key_admits_one_execution_per_window<B: Backend>(store: Arc<SqlStore<B>>) {
    let keyed = |key: &str, window_ms: i64| {
        let mut new = new_execution("a");
        new.dedupe = Some(DedupeKey {
            key: key.to_owned(),
            expires_at: Timestamp(new.created_at.millis() + window_ms),
        });
        new
    };
    let first = store.enqueue(keyed("evt_1", 60_000)).await.unwrap();
    assert!(!first.duplicate);
    let again = store.enqueue(keyed("evt_1", 60_000)).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.id, first.id, "a duplicate names the first execution");
    let other = store.enqueue(keyed("evt_2", 60_000)).await.unwrap();
    assert!(!other.duplicate);
    let mut elsewhere = keyed("evt_1", 60_000);
    elsewhere.flow = String::from("b");
    assert!(
        !store.enqueue(elsewhere).await.unwrap().duplicate,
        "keys are per flow"
    );
    let page = store
        .executions(ExecutionFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3, "the duplicate queued nothing");

    let short = store.enqueue(keyed("evt_3", 0)).await.unwrap();
    let after_window = store.enqueue(keyed("evt_3", 0)).await.unwrap();
    assert!(
        !after_window.duplicate,
        "an expired key admits a new execution"
    );
    assert_ne!(after_window.id, short.id);
}

async fn operators_retry_failed_executions_with_fresh_attempts_and_cancel_others<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    let node = NodeId::generate();
    let id = store.enqueue(new_execution("a")).await.unwrap().id;
    let leased = lease_now(&store, &node, 1).await;
    let mut failed = step(0, "call");
    failed.status = StepStatus::Failed;
    store
        .checkpoint(Checkpoint {
            execution: id.clone(),
            lease: leased[0].lease.clone(),
            follow_ups: vec![],
            events: vec![],
            state: vec![],
            response: None,
            steps: vec![failed],
            logs: vec![],
            end: Some(End::Finished(Finish {
                status: ExecutionStatus::Failed,
                error: None,
                output: None,
            })),
        })
        .await
        .unwrap();
    assert_eq!(
        store.cancel(&id).await.unwrap(),
        Control::WrongStatus(ExecutionStatus::Failed)
    );
    assert_eq!(store.retry_failed(&id).await.unwrap(), Control::Applied);
    let again = lease_now(&store, &node, 1).await;
    assert_eq!(again.len(), 1);
    assert!(
        again[0].failed_attempts.is_empty(),
        "a retried step starts its attempts afresh"
    );
    assert_eq!(
        store.retry_failed(&id).await.unwrap(),
        Control::WrongStatus(ExecutionStatus::Running)
    );

    assert_eq!(store.cancel(&id).await.unwrap(), Control::CancelRequested);
    let checkpointed = store
        .checkpoint(Checkpoint {
            execution: id.clone(),
            lease: again[0].lease.clone(),
            steps: vec![step(1, "call")],
            logs: vec![],
            end: None,
            follow_ups: vec![],
            events: vec![],
            state: vec![],
            response: None,
        })
        .await
        .unwrap();
    assert_eq!(checkpointed, Checkpointed::Cancelled);
    let detail = store.execution(&id).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, ExecutionStatus::Cancelled);
    assert_eq!(detail.steps.len(), 2, "what ran before the stop is kept");

    let queued = store.enqueue(new_execution("a")).await.unwrap().id;
    assert_eq!(store.cancel(&queued).await.unwrap(), Control::Applied);
    assert!(lease_now(&store, &node, 1).await.is_empty());
    let unknown = ExecutionId::generate();
    assert_eq!(store.cancel(&unknown).await.unwrap(), Control::NotFound);
}

async fn pruning_deletes_old_ended_executions_with_their_records_in_batches<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    for _ in 0..3 {
        store.enqueue(new_execution("a")).await.unwrap();
    }
    assert_eq!(finish_all(&store, ExecutionStatus::Succeeded).await, 3);
    let waiting = store.enqueue(new_execution("a")).await.unwrap().id;
    let later = Timestamp::now().after(std::time::Duration::from_secs(1));
    let step_records = || async {
        store
            .backend
            .read(|db| db.one("SELECT count(*) FROM steps", args![], |row| row.int(0)))
            .await
            .unwrap()
    };
    assert_eq!(step_records().await, 3);

    let first = store.prune(later, later, 2).await.unwrap();
    assert_eq!(first.executions, 2, "one batch at a time");
    let second = store.prune(later, later, 2).await.unwrap();
    assert_eq!(second.executions, 1);
    assert_eq!(
        store.prune(later, later, 2).await.unwrap(),
        Pruned::default()
    );
    let page = store
        .executions(ExecutionFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "what has not ended stays");
    assert_eq!(page.items[0].id, waiting);
    assert_eq!(
        step_records().await,
        0,
        "step records go with their execution"
    );
}

/// Ends a leased execution's lease with `end`.
async fn end_lease<B: Backend>(store: &SqlStore<B>, execution: &LeasedExecution, end: End) {
    let checkpoint = Checkpoint {
        execution: execution.id.clone(),
        lease: execution.lease.clone(),
        steps: vec![],
        logs: vec![],
        end: Some(end),
        follow_ups: vec![],
        events: vec![],
        state: vec![],
        response: None,
    };
    store.checkpoint(checkpoint).await.unwrap();
}

fn finished(status: ExecutionStatus) -> End {
    End::Finished(Finish {
        status,
        error: None,
        output: None,
    })
}

async fn an_ordering_key_runs_its_executions_one_after_another<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    let node = NodeId::generate();
    let keyed = |key: &str| NewExecution {
        ordering_key: Some(key.to_owned()),
        ..new_execution("a")
    };
    let lease_ids = || async {
        let leased = lease_now(&store, &node, 10).await;
        let ids: Vec<ExecutionId> = leased
            .iter()
            .map(|execution| execution.id.clone())
            .collect();
        (leased, ids)
    };
    let a1 = store.enqueue(keyed("alice")).await.unwrap().id;
    let a2 = store.enqueue(keyed("alice")).await.unwrap().id;
    let b1 = store.enqueue(keyed("bob")).await.unwrap().id;
    let b2 = store.enqueue(keyed("bob")).await.unwrap().id;
    let free = store.enqueue(new_execution("a")).await.unwrap().id;
    let (first, ids) = lease_ids().await;
    assert_eq!(
        ids,
        [a1.clone(), b1.clone(), free],
        "the head of each key, and the unkeyed one"
    );

    // alice's head waits for a retry; bob's head succeeds.
    let error = ErrorRecord {
        code: "http_status".into(),
        message: "503".into(),
        step: None,
    };
    let later = Timestamp::now().after(std::time::Duration::from_secs(60));
    end_lease(&store, &first[0], End::Retry { at: later, error }).await;
    end_lease(&store, &first[1], finished(ExecutionStatus::Succeeded)).await;
    let (second, ids) = lease_ids().await;
    assert_eq!(
        ids,
        [b2],
        "a waiting head holds back its key, and only its key"
    );

    // alice's head fails for good: the next of alice runs.
    end_lease(&store, &second[0], finished(ExecutionStatus::Succeeded)).await;
    let again = store
        .lease(&node, Slots::each(1), later, soon())
        .await
        .unwrap();
    assert_eq!(again[0].id, a1);
    end_lease(&store, &again[0], finished(ExecutionStatus::Failed)).await;
    let (_, ids) = lease_ids().await;
    assert_eq!(ids, [a2]);
}

async fn a_concurrency_group_runs_at_most_its_limit<B: Backend>(store: Arc<SqlStore<B>>) {
    let node = NodeId::generate();
    let grouped = |key: &str| NewExecution {
        concurrency: Some(ConcurrencyGroup {
            key: key.to_owned(),
            limit: 2,
        }),
        ..new_execution("a")
    };
    for _ in 0..3 {
        store.enqueue(grouped("eu")).await.unwrap();
    }
    store.enqueue(grouped("us")).await.unwrap();
    let leased = lease_now(&store, &node, 10).await;
    assert_eq!(leased.len(), 3, "two of eu (its limit) and the one of us");
    assert!(lease_now(&store, &node, 10).await.is_empty(), "eu is full");
    let done = Checkpoint {
        execution: leased[0].id.clone(),
        lease: leased[0].lease.clone(),
        steps: vec![],
        logs: vec![],
        end: Some(End::Finished(Finish {
            status: ExecutionStatus::Succeeded,
            error: None,
            output: None,
        })),
        follow_ups: vec![],
        events: vec![],
        state: vec![],
        response: None,
    };
    store.checkpoint(done).await.unwrap();
    assert_eq!(lease_now(&store, &node, 10).await.len(), 1, "a slot opened");
}

async fn a_throttle_caps_starts_per_period_and_a_debounce_keeps_the_last<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    let node = NodeId::generate();
    let throttled = || NewExecution {
        throttle: Some(ThrottleGroup {
            key: String::new(),
            count: 2,
            per: std::time::Duration::from_secs(10),
        }),
        ..new_execution("a")
    };
    for _ in 0..3 {
        store.enqueue(throttled()).await.unwrap();
    }
    let now = Timestamp::now();
    assert_eq!(
        store
            .lease(&node, Slots::each(10), now, soon())
            .await
            .unwrap()
            .len(),
        2,
        "two starts per 10 s"
    );
    assert!(
        store
            .lease(&node, Slots::each(10), now, soon())
            .await
            .unwrap()
            .is_empty()
    );
    let later = now.after(std::time::Duration::from_secs(11));
    assert_eq!(
        store
            .lease(&node, Slots::each(10), later, soon())
            .await
            .unwrap()
            .len(),
        1,
        "the next period"
    );

    let debounced = |delay_ms: i64| {
        let mut new = new_execution("b");
        new.debounce_key = Some(String::from("doc-1"));
        new.not_before = Some(Timestamp(new.created_at.millis() + delay_ms));
        new
    };
    let first = store.enqueue(debounced(1_000)).await.unwrap().id;
    let second = store.enqueue(debounced(1_000)).await.unwrap().id;
    let superseded = store.execution(&first).await.unwrap().unwrap().summary;
    assert_eq!(superseded.status, ExecutionStatus::Cancelled);
    assert_eq!(superseded.error.unwrap().code, "debounced");
    let t = Timestamp::now();
    assert!(
        store
            .lease(&node, Slots::each(10), t, soon())
            .await
            .unwrap()
            .is_empty(),
        "it waits its period"
    );
    let due = store
        .lease(
            &node,
            Slots::each(10),
            t.after(std::time::Duration::from_secs(2)),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, second, "the last of the burst runs");
}

async fn a_cancel_asked_of_a_running_execution_holds_when_its_lease_is_lost<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    let node = NodeId::generate();
    let id = store.enqueue(new_execution("a")).await.unwrap().id;
    let now = Timestamp::now();
    store.lease(&node, Slots::each(1), now, now).await.unwrap();
    assert_eq!(store.cancel(&id).await.unwrap(), Control::CancelRequested);
    let later = now.after(std::time::Duration::from_secs(1));
    assert_eq!(
        store.requeue_expired(later).await.unwrap(),
        1,
        "the worker died"
    );
    assert!(
        lease_now(&store, &node, 1).await.is_empty(),
        "it does not run again"
    );
    let cancelled = store.execution(&id).await.unwrap().unwrap().summary;
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
}

/// A checkpoint of `leased` that only ends its lease with `end`.
fn ending(leased: &LeasedExecution, end: End) -> Checkpoint {
    Checkpoint {
        execution: leased.id.clone(),
        lease: leased.lease.clone(),
        steps: vec![],
        logs: vec![],
        end: Some(end),
        follow_ups: vec![],
        events: vec![],
        state: vec![],
        response: None,
    }
}

fn child_of(parent: &ExecutionId) -> NewExecution {
    let mut child = new_execution("child");
    child.parent = Some(crate::records::Parent {
        id: parent.clone(),
        waits: true,
    });
    child
}

async fn a_child_wakes_its_waiting_parent_whichever_commits_first<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    let node = NodeId::generate();
    let later = Timestamp::now().after(std::time::Duration::from_secs(3600));
    let parent_id = store.enqueue(new_execution("parent")).await.unwrap().id;
    let parent = lease_now(&store, &node, 1).await.remove(0);
    let child = child_of(&parent_id);
    let child_id = child.id.clone();
    // The parent queues the child and waits, in one commit.
    let mut wait = ending(
        &parent,
        End::Wait {
            at: later,
            awaiting: vec![child_id.clone()],
        },
    );
    wait.follow_ups.push(child);
    store.checkpoint(wait).await.unwrap();
    // Only the child is runnable: the parent waits.
    let leased = lease_now(&store, &node, 10).await;
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].id, child_id);
    let children = ExecutionFilter {
        parent_id: Some(parent_id.clone()),
        ..ExecutionFilter::default()
    };
    assert_eq!(
        store
            .executions(children, 10, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let done = Finish {
        status: ExecutionStatus::Succeeded,
        error: None,
        output: Some(json!({"total": 3})),
    };
    store
        .checkpoint(ending(&leased[0], End::Finished(done.clone())))
        .await
        .unwrap();
    // The child's end made the parent runnable now, not in an hour.
    let parent = lease_now(&store, &node, 10).await.remove(0);
    assert_eq!(parent.id, parent_id);
    let outcome = store.outcome(&child_id).await.unwrap().unwrap();
    assert_eq!(outcome.output, Some(json!({"total": 3})));

    // A second child ends while the parent still runs: the parent's wait wakes at once.
    let second_id = store.enqueue(child_of(&parent_id)).await.unwrap().id;
    let second = lease_now(&store, &node, 10).await.remove(0);
    store
        .checkpoint(ending(&second, End::Finished(done)))
        .await
        .unwrap();
    let wait = End::Wait {
        at: later,
        awaiting: vec![second_id],
    };
    store.checkpoint(ending(&parent, wait)).await.unwrap();
    assert_eq!(lease_now(&store, &node, 10).await.remove(0).id, parent_id);
}

async fn a_hand_off_is_refused_once_the_execution_ended_and_queues_a_callback_otherwise<
    B: Backend,
>(
    store: Arc<SqlStore<B>>,
) {
    let node = NodeId::generate();
    let id = store.enqueue(new_execution("slow")).await.unwrap().id;
    assert!(store.hand_off(&id, "http://127.0.0.1:9/cb").await.unwrap());
    let leased = lease_now(&store, &node, 1).await.remove(0);
    let finish = Finish {
        status: ExecutionStatus::Succeeded,
        error: None,
        output: None,
    };
    let mut end = ending(&leased, End::Finished(finish));
    end.response = Some(json!({"status": 201}));
    store.checkpoint(end).await.unwrap();
    assert!(!store.hand_off(&id, "http://127.0.0.1:9/cb").await.unwrap());
    let outcome = store.outcome(&id).await.unwrap().unwrap();
    assert_eq!(outcome.response, Some(json!({"status": 201})));
    let callback = lease_now(&store, &node, 1).await.remove(0);
    assert_eq!(callback.flow, crate::outbound::CALLBACK_FLOW);
    assert_eq!(
        callback.input,
        json!({"execution_id": id, "url": "http://127.0.0.1:9/cb"})
    );
}

fn definition(flow: &str, timing: &str, next: i64) -> crate::schedule::ScheduleDefinition {
    crate::schedule::ScheduleDefinition {
        integration: String::from("shop"),
        flow: flow.to_owned(),
        timing: timing.to_owned(),
        next_fire_at: Timestamp(next),
    }
}

fn fire_of(flow: &str, claimed: Option<i64>, at: &[i64], skip: bool) -> crate::schedule::Fire {
    crate::schedule::Fire {
        integration: String::from("shop"),
        flow: flow.to_owned(),
        claimed: claimed.map(Timestamp),
        next_fire_at: claimed.map(|claimed| Timestamp(claimed + 60_000)),
        executions: at
            .iter()
            .map(|at| {
                let mut new = NewExecution::new(
                    "shop",
                    flow,
                    json!({"kind": "schedule", "fire": "scheduled"}),
                    json!({}),
                );
                new.scheduled_at = Some(Timestamp(*at));
                new
            })
            .collect(),
        skip_if_running: skip,
    }
}

async fn a_schedule_fire_is_claimed_once_and_never_recorded_twice<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    use crate::schedule::{FireOutcome, ScheduleStore};
    store
        .sync_schedules(vec![definition("nightly", "every 1m", 60_000)])
        .await
        .unwrap();
    // Injected time: nothing is due before its fire, then it is.
    assert!(
        store
            .due_schedules(Timestamp(59_999), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.due_schedules(Timestamp(60_000), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(store.next_fire_at().await.unwrap(), Some(Timestamp(60_000)));

    // Two claimers read the same next fire; the first wins, the second loses.
    let outcomes = store
        .fire(vec![
            fire_of("nightly", Some(60_000), &[60_000], true),
            fire_of("nightly", Some(60_000), &[60_000], true),
        ])
        .await
        .unwrap();
    assert!(matches!(&outcomes[0], FireOutcome::Fired(ids) if ids.len() == 1));
    assert_eq!(outcomes[1], FireOutcome::Lost);
    let record = store.schedule("shop", "nightly").await.unwrap().unwrap();
    assert_eq!(record.next_fire_at, Timestamp(120_000));
    assert_eq!(record.last_fire_at, Some(Timestamp(60_000)));

    // A claim that moved the next fire but names a fire already recorded queues nothing.
    let again = store
        .fire(vec![fire_of("nightly", Some(120_000), &[60_000], false)])
        .await
        .unwrap();
    assert_eq!(again, [FireOutcome::Fired(vec![])]);

    // While the first run has not ended, `skip` records the fire as skipped.
    let skipped = store
        .fire(vec![fire_of("nightly", Some(180_000), &[180_000], true)])
        .await
        .unwrap();
    assert!(
        matches!(&skipped[0], FireOutcome::Skipped { .. }),
        "{skipped:?}"
    );
    let fires = store.fires("shop", "nightly", 10).await.unwrap();
    let outcomes: Vec<&str> = fires.iter().map(|fire| fire.outcome.as_str()).collect();
    assert_eq!(outcomes, ["skipped", "fired"]);
    assert_eq!(fires[0].execution_id, None);

    // Once it succeeded, its scheduled time is the schedule's last success.
    assert_eq!(finish_all(&store, ExecutionStatus::Succeeded).await, 1);
    let record = store.schedule("shop", "nightly").await.unwrap().unwrap();
    assert_eq!(record.last_success_at, Some(Timestamp(60_000)));
}

async fn syncing_schedules_keeps_unchanged_ones_and_their_pause<B: Backend>(
    store: Arc<SqlStore<B>>,
) {
    use crate::schedule::{ScheduleFilter, ScheduleStore};
    store
        .sync_schedules(vec![
            definition("a", "every 1m", 60_000),
            definition("b", "every 1h", 3_600_000),
            definition("c", "every 1d", 86_400_000),
        ])
        .await
        .unwrap();
    let paused = store
        .pause_schedule("shop", "a", true, Timestamp(0))
        .await
        .unwrap()
        .unwrap();
    assert!(paused.paused);
    assert_eq!(
        store.next_fire_at().await.unwrap(),
        Some(Timestamp(3_600_000))
    );
    // A later sync (a restart) with new "now" times: `a` unchanged keeps its next fire
    // and its pause, `b` changed restarts, `c` is gone.
    store
        .sync_schedules(vec![
            definition("a", "every 1m", 900_000),
            definition("b", "every 2h", 7_200_000),
        ])
        .await
        .unwrap();
    let page = store
        .schedules(ScheduleFilter {
            limit: 10,
            ..ScheduleFilter::default()
        })
        .await
        .unwrap();
    let listed: Vec<(&str, i64, bool)> = page
        .items
        .iter()
        .map(|record| {
            (
                record.flow.as_str(),
                record.next_fire_at.millis(),
                record.paused,
            )
        })
        .collect();
    assert_eq!(listed, [("a", 60_000, true), ("b", 7_200_000, false)]);
    // Resuming goes on from the time given, not from what was missed.
    let resumed = store
        .pause_schedule("shop", "a", false, Timestamp(960_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (resumed.paused, resumed.next_fire_at),
        (false, Timestamp(960_000))
    );
    // Pages follow the cursor.
    let first = store
        .schedules(ScheduleFilter {
            limit: 1,
            ..ScheduleFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(first.next_cursor.as_deref(), Some("shop/a"));
    let second = store
        .schedules(ScheduleFilter {
            limit: 1,
            after: first.next_cursor,
            ..ScheduleFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(second.items[0].flow, "b");
    assert_eq!(second.next_cursor, None);
}

/// A fresh SQLite store in `folder`.
fn sqlite_store(folder: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(folder.path(), Arc::default()).unwrap())
}

/// The URL of a fresh schema of its own in the database that `SWITCHBOARD_TEST_POSTGRES`
/// names; `None`, after saying so, when it names none (in CI it must).
async fn postgres_schema() -> Option<String> {
    let Ok(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the store tests on PostgreSQL too: set SWITCHBOARD_TEST_POSTGRES"
        );
        eprintln!("skipped on PostgreSQL: SWITCHBOARD_TEST_POSTGRES names no database");
        return None;
    };
    let schema = format!("test_{}", NodeId::generate().as_str().to_lowercase());
    let url = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}options=-csearch_path%3D{schema}")
    })
    .await
    .unwrap();
    Some(url)
}

/// A PostgreSQL store on `url`, as one node of several sharing it.
async fn postgres_node(url: &str) -> Arc<PostgresStore> {
    let url = url.to_owned();
    let store = tokio::task::spawn_blocking(move || PostgresStore::connect(&url, Arc::default()))
        .await
        .unwrap()
        .unwrap();
    Arc::new(store)
}

/// A fresh PostgreSQL store in a schema of its own, when there is a database to test on.
async fn postgres_store() -> Option<Arc<PostgresStore>> {
    Some(postgres_node(&postgres_schema().await?).await)
}

/// Leases from `node` until a lease finds nothing; every execution leased.
async fn lease_all(store: Arc<PostgresStore>) -> Vec<ExecutionId> {
    let node = NodeId::generate();
    let mut leased = Vec::new();
    loop {
        let batch = lease_now(&store, &node, 5).await;
        if batch.is_empty() {
            return leased;
        }
        leased.extend(batch.into_iter().map(|execution| execution.id));
    }
}

#[tokio::test]
async fn nodes_sharing_a_database_lease_each_execution_once_and_keep_limits() {
    let Some(url) = postgres_schema().await else {
        return;
    };
    // Three nodes start at once: each migrates, once.
    let (first, second, third) = tokio::join!(
        postgres_node(&url),
        postgres_node(&url),
        postgres_node(&url)
    );
    let mut plain = Vec::new();
    for index in 0..60 {
        let node = [&first, &second, &third][index % 3];
        plain.push(node.enqueue(new_execution("a")).await.unwrap().id);
    }
    for _ in 0..10 {
        let limited = NewExecution {
            concurrency: Some(ConcurrencyGroup {
                key: String::from("k"),
                limit: 3,
            }),
            ..new_execution("limited")
        };
        first.enqueue(limited).await.unwrap();
    }
    let (a, b, c) = tokio::join!(
        lease_all(Arc::clone(&first)),
        lease_all(Arc::clone(&second)),
        lease_all(Arc::clone(&third))
    );
    let mut leased: Vec<_> = a.into_iter().chain(b).chain(c).collect();
    let total = leased.len();
    leased.sort();
    leased.dedup();
    assert_eq!(leased.len(), total, "no execution is leased twice");
    assert_eq!(
        total,
        60 + 3,
        "every plain one, and of the group only its limit"
    );
    assert!(plain.iter().all(|id| leased.contains(id)));
}

#[tokio::test]
async fn nodes_accepting_one_dedupe_key_at_once_start_one_execution() {
    let Some(url) = postgres_schema().await else {
        return;
    };
    let (first, second) = tokio::join!(postgres_node(&url), postgres_node(&url));
    let keyed = || {
        let mut new = new_execution("a");
        new.dedupe = Some(DedupeKey {
            key: String::from("evt_1"),
            expires_at: Timestamp(new.created_at.millis() + 60_000),
        });
        new
    };
    let attempts: Vec<_> = (0..20)
        .map(|index| {
            let node = Arc::clone(if index % 2 == 0 { &first } else { &second });
            let new = keyed();
            tokio::spawn(async move { node.enqueue(new).await.unwrap() })
        })
        .collect();
    let mut enqueued = Vec::new();
    for attempt in attempts {
        enqueued.push(attempt.await.unwrap());
    }
    let started: Vec<_> = enqueued.iter().filter(|e| !e.duplicate).collect();
    assert_eq!(started.len(), 1, "{enqueued:?}");
    assert!(enqueued.iter().all(|e| e.id == started[0].id));
    let page = first
        .executions(ExecutionFilter::default(), 50, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn one_node_leads_and_hands_over_when_it_goes_and_writes_wake_the_others() {
    use crate::cluster::Signal;
    let Some(url) = postgres_schema().await else {
        return;
    };
    let (first, second) = tokio::join!(postgres_node(&url), postgres_node(&url));
    let leads = |store: &PostgresStore| *store.cluster().unwrap().leading.borrow();
    let settled = async {
        while leads(&first) == leads(&second) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), settled)
        .await
        .expect("one of two nodes leads");

    let (leader, other) = if leads(&first) {
        (first, second)
    } else {
        (second, first)
    };
    let mut heard = other.cluster().unwrap().signals.subscribe();
    leader.enqueue(new_execution("a")).await.unwrap();
    let signal = tokio::time::timeout(std::time::Duration::from_secs(10), heard.recv())
        .await
        .expect("the other node hears of the new work")
        .unwrap();
    assert_eq!(signal, Signal::Work);

    drop(leader);
    let handed_over = async {
        while !leads(&other) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    // The leader's listener stops within a tick, and the other tries within a tick.
    tokio::time::timeout(std::time::Duration::from_secs(20), handed_over)
        .await
        .expect("the other node leads once the leader is gone");
}

#[tokio::test]
async fn heartbeats_list_the_live_nodes_with_their_leases() {
    use crate::cluster::Heartbeat;
    let folder = tempfile::tempdir().unwrap();
    let store = sqlite_store(&folder);
    let node = NodeId::generate();
    let beat = |at: i64| Heartbeat {
        node: node.as_str().to_owned(),
        started_at: Timestamp(1_000),
        workers: 4,
        webhook_workers: 2,
        leading: true,
        version: String::from("0.1.0"),
        at: Timestamp(at),
    };
    store.heartbeat(beat(2_000)).await.unwrap();
    store.enqueue(new_execution("a")).await.unwrap();
    lease_now(&store, &node, 1).await;
    let nodes = store.nodes(Timestamp(1_500)).await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].leases, 1);
    assert!(nodes[0].leading);
    assert!(
        store.nodes(Timestamp(2_001)).await.unwrap().is_empty(),
        "not heard since"
    );
    store.heartbeat(beat(3_000)).await.unwrap();
    assert_eq!(
        store.nodes(Timestamp(2_001)).await.unwrap()[0].last_heartbeat_at,
        Timestamp(3_000)
    );
}

/// Runs each named test body on a fresh store of each backend.
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let folder = tempfile::tempdir().unwrap();
                    super::$name(super::sqlite_store(&folder)).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(store) = super::postgres_store().await {
                        super::$name(store).await;
                    }
                }
            }
        )*
    };
}

on_each_backend!(
    syncing_schedules_keeps_unchanged_ones_and_their_pause,
    a_schedule_fire_is_claimed_once_and_never_recorded_twice,
    executions_are_leased_once_checkpointed_and_finished,
    a_lost_lease_refuses_checkpoints_and_orphans_resume_after_their_steps,
    expired_leases_are_requeued,
    listing_pages_newest_first_with_filters,
    window_stats_count_ended_executions_of_the_named_flows,
    an_alert_change_is_recorded_once_with_its_notifications,
    a_retry_is_a_timer_in_the_store_that_holds_no_lease,
    a_dedupe_key_admits_one_execution_per_window,
    operators_retry_failed_executions_with_fresh_attempts_and_cancel_others,
    pruning_deletes_old_ended_executions_with_their_records_in_batches,
    an_ordering_key_runs_its_executions_one_after_another,
    a_concurrency_group_runs_at_most_its_limit,
    a_throttle_caps_starts_per_period_and_a_debounce_keeps_the_last,
    a_cancel_asked_of_a_running_execution_holds_when_its_lease_is_lost,
    a_child_wakes_its_waiting_parent_whichever_commits_first,
    a_hand_off_is_refused_once_the_execution_ended_and_queues_a_callback_otherwise,
    concurrent_writes_share_commits_and_all_land,
);
