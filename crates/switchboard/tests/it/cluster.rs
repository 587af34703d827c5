//! Several nodes on one PostgreSQL: every acknowledged request succeeds exactly once, no
//! scheduled instant fires twice, and outbound deliveries are neither lost nor sent
//! again once they succeeded, while one node is killed with SIGKILL and another is
//! restarted under load.
//!
//! Three real `switchboard serve` processes share a schema of their own in the database
//! `SWITCHBOARD_TEST_POSTGRES` names (in CI the machine's PostgreSQL). Clients post
//! webhooks and outbound messages round-robin to the live nodes and keep what was
//! acknowledged; the flow's `http` step calls a receiver that records every
//! `Idempotency-Key`, and the outbound endpoint is the same receiver. A schedule fires
//! every second on whichever node leads.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Receiver, ServeProcess, delivery_status, executions_of, get_json, post_json,
    wait_for_execution, wait_until,
};

const CLIENTS: usize = 6;

fn project(receiver: &str) -> String {
    format!(
        r#"
name: cluster
flows:
  ingest:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: send
        http: {{ method: POST, url: "{receiver}/effects", json: '{{n: .n}}' }}
  tick:
    trigger: {{ schedule: {{ every: 1s, catch_up: none }} }}
    steps:
      - id: note
        log: 'fired at ${{{{ .scheduled_at }}}}'
"#
    )
}

/// A schema of its own in the test database, as a store URL; `None` (after saying so)
/// where no database is named, which CI never allows.
async fn postgres_schema() -> Option<String> {
    let Ok(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the cluster test: set SWITCHBOARD_TEST_POSTGRES"
        );
        eprintln!("skipped: SWITCHBOARD_TEST_POSTGRES names no database");
        return None;
    };
    let schema = format!(
        "test_cluster_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let created = tokio::task::spawn_blocking({
        let (url, schema) = (url.clone(), schema.clone());
        move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
            client.batch_execute(&format!("CREATE SCHEMA {schema}"))
        }
    });
    created.await.unwrap().unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{separator}options=-csearch_path%3D{schema}"))
}

/// What the clients had acknowledged: webhook executions (with their `n`) and messages.
#[derive(Default)]
struct Acknowledged {
    executions: Vec<(String, i64)>,
    messages: Vec<String>,
}

/// Posts webhooks and messages to `bases` in turn until `stop`; a node that does not
/// answer is skipped.
async fn load(
    client_index: usize,
    bases: Arc<Mutex<Vec<String>>>,
    acknowledged: Arc<Mutex<Acknowledged>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for request in 0.. {
        if stop.is_cancelled() {
            return;
        }
        let live = bases.lock().unwrap().clone();
        let base = &live[request % live.len()];
        let n = i64::try_from(client_index * 1_000_000 + request).unwrap();
        if request % 5 == 0 {
            let id = format!("msg_{n}");
            let sent = client
                .post(format!("{base}/api/v1/messages"))
                .json(&json!({"event_type": "order.created", "payload": {"n": n}, "id": id}))
                .send()
                .await;
            if let Ok(response) = sent {
                assert_eq!(response.status(), 202, "a message is accepted");
                acknowledged.lock().unwrap().messages.push(id);
            }
            continue;
        }
        let sent = client
            .post(format!("{base}/hooks/cluster/ingest"))
            .json(&json!({"n": n}))
            .send()
            .await;
        if let Ok(response) = sent {
            assert_eq!(response.status(), 202, "a webhook is accepted");
            if let Ok(body) = response.json::<Value>().await {
                let id = body["execution_id"].as_str().unwrap_or_default().to_owned();
                acknowledged.lock().unwrap().executions.push((id, n));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_nothing_and_repeat_nothing_when_one_is_killed_and_one_restarted() {
    let Some(store) = postgres_schema().await else {
        return;
    };
    let receiver = Receiver::start().await;
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("cluster.yaml"), project(&receiver.base)).unwrap();
    let data: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let args = [
        "--store",
        store.as_str(),
        "--workers",
        "4",
        "--lease-ttl",
        "3s",
        "--webhook-allow-network",
        "127.0.0.0/8",
    ];
    let start = |node: usize| ServeProcess::start(folder.path(), data[node].path(), &args);
    let mut nodes: Vec<Option<ServeProcess>> = (0..3).map(|node| Some(start(node))).collect();
    let base = |nodes: &[Option<ServeProcess>], node: usize| {
        nodes[node].as_ref().map(|node| node.base.clone()).unwrap()
    };
    let client = reqwest::Client::new();
    let endpoint = post_json(
        &client,
        &format!("{}/api/v1/endpoints", base(&nodes, 0)),
        &json!({"url": format!("{}/deliveries", receiver.base)}),
    )
    .await;
    assert!(endpoint["id"].is_string(), "{endpoint}");
    let cluster_api = format!("{}/api/v1/cluster", base(&nodes, 1));
    let cluster = wait_until("every node's first heartbeat", async || {
        let cluster: Value = client
            .get(&cluster_api)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (cluster["items"].as_array()?.len() == 3).then_some(cluster)
    })
    .await;
    let leaders = cluster["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["leading"] == true)
        .count();
    assert!(leaders <= 1, "at most one node leads: {cluster:#}");

    let bases = Arc::new(Mutex::new((0..3).map(|node| base(&nodes, node)).collect()));
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            tokio::spawn(load(
                index,
                Arc::clone(&bases),
                Arc::clone(&acknowledged),
                stop.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A node dies mid-load: the others take its leases over once they expire.
    bases
        .lock()
        .unwrap()
        .retain(|live| *live != base(&nodes, 1));
    nodes[1].take().unwrap().kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Another goes away in order and comes back.
    bases
        .lock()
        .unwrap()
        .retain(|live| *live != base(&nodes, 2));
    assert_eq!(nodes[2].take().unwrap().terminate(), 0);
    nodes[2] = Some(start(2));
    bases.lock().unwrap().push(base(&nodes, 2));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    for client in clients {
        client.await.unwrap();
    }

    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    assert!(
        acknowledged.executions.len() > 100 && !acknowledged.messages.is_empty(),
        "too little load to mean anything: {} webhooks, {} messages",
        acknowledged.executions.len(),
        acknowledged.messages.len()
    );
    let survivor = base(&nodes, 0);
    for (id, n) in &acknowledged.executions {
        let execution = wait_for_execution(&client, &survivor, id).await;
        assert_eq!(execution["status"], "succeeded", "{execution:#}");
        assert_eq!(execution["input"]["n"], json!(n));
    }
    let ids: HashSet<&str> = acknowledged
        .executions
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        ids.len(),
        acknowledged.executions.len(),
        "one execution each"
    );
    for message in &acknowledged.messages {
        wait_until("every acknowledged message delivered", async || {
            (delivery_status(&client, &survivor, message)
                .await
                .as_deref()
                == Some("succeeded"))
            .then_some(())
        })
        .await;
    }

    let requests = receiver.requests();
    let mut effects: HashMap<String, usize> = HashMap::new();
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for request in &requests {
        if request.path == "/effects" {
            let key = request.headers["idempotency-key"].to_str().unwrap();
            *effects.entry(key.to_owned()).or_default() += 1;
        } else {
            let id = request.headers["webhook-id"].to_str().unwrap();
            *deliveries.entry(id.to_owned()).or_default() += 1;
        }
    }
    for (id, _) in &acknowledged.executions {
        assert!(
            effects.contains_key(&format!("{id}.send")),
            "{id} never reached the receiver"
        );
    }
    for message in &acknowledged.messages {
        assert!(
            deliveries.contains_key(message),
            "{message} was never delivered"
        );
    }
    // A raw repeat is a request sent again because its node died between the answer and
    // the checkpoint; only the killed node's work can be repeated, and at most once.
    let repeated = |counts: &HashMap<String, usize>| {
        assert!(counts.values().all(|count| *count <= 2), "{counts:?}");
        counts.values().filter(|count| **count > 1).count()
    };
    let (effect_repeats, delivery_repeats) = (repeated(&effects), repeated(&deliveries));

    let fires = executions_of(&client, &survivor, "tick").await;
    let instants: Vec<&Value> = fires
        .iter()
        .map(|execution| &execution["trigger"]["scheduled_at"])
        .collect();
    let distinct: HashSet<String> = instants.iter().map(|at| at.to_string()).collect();
    assert!(instants.len() >= 3, "the schedule fired: {instants:?}");
    assert_eq!(
        distinct.len(),
        instants.len(),
        "no instant fires twice: {instants:?}"
    );

    println!(
        "cluster test: {} webhooks and {} messages acknowledged by 3 nodes, one SIGKILLed and one restarted; \
         all succeeded once; {effect_repeats} effects and {delivery_repeats} deliveries sent again by a raw repeat; \
         {} schedule fires, none twice",
        acknowledged.executions.len(),
        acknowledged.messages.len(),
        instants.len()
    );
    for node in nodes.into_iter().flatten() {
        assert_eq!(node.terminate(), 0);
    }
}

const MOVING: &str = r#"
name: moving
flows:
  ingest:
    trigger: { webhook: {} }
    steps:
      - id: shape
        transform: '{n: .n}'
      - id: announce
        publish: { topic: order.created }
  seen:
    trigger: { event: { topic: "order.*" } }
    steps:
      - id: note
        log: 'seen ${{ .n }}'
"#;

/// Every execution id a process lists, sorted.
async fn execution_ids(client: &reqwest::Client, base: &str) -> Vec<String> {
    let page = get_json(client, &format!("{base}/api/v1/executions?limit=500")).await;
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_store_moves_to_postgresql_whole() {
    let Some(store) = postgres_schema().await else {
        return;
    };
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("moving.yaml"), MOVING).unwrap();
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    let server = ServeProcess::start(folder.path(), data.path(), &[]);
    let mut accepted = Vec::new();
    for n in 0..5 {
        let response = client
            .post(format!("{}/hooks/moving/ingest", server.base))
            .json(&json!({"n": n}))
            .send()
            .await
            .unwrap();
        accepted.push(crate::support::execution_id(response).await);
    }
    for id in &accepted {
        let execution = wait_for_execution(&client, &server.base, id).await;
        assert_eq!(execution["status"], "succeeded", "{execution:#}");
    }
    wait_until("the subscriber to see every event", async || {
        (executions_of(&client, &server.base, "seen").await.len() == 5).then_some(())
    })
    .await;
    let endpoint = post_json(
        &client,
        &format!("{}/api/v1/endpoints", server.base),
        &json!({"url": "https://example.invalid/hook", "event_types": ["order.*"]}),
    )
    .await;
    let before = execution_ids(&client, &server.base).await;
    assert_eq!(server.terminate(), 0);

    let migrated = crate::support::binary()
        .args(["store", "migrate", "--from"])
        .arg(data.path())
        .args(["--to", &store])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&migrated.stdout);
    assert!(
        migrated.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(printed.contains("copied"), "{printed}");
    let again = crate::support::binary()
        .args(["store", "migrate", "--from"])
        .arg(data.path())
        .args(["--to", &store])
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "a store that holds data is refused"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds data"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(folder.path(), elsewhere.path(), &["--store", &store]);
    assert_eq!(
        execution_ids(&client, &server.base).await,
        before,
        "every execution moved"
    );
    let moved = wait_for_execution(&client, &server.base, &accepted[0]).await;
    assert_eq!(
        moved["steps"][0]["output"],
        json!({"n": 0}),
        "with its steps"
    );
    let endpoints = get_json(&client, &format!("{}/api/v1/endpoints", server.base)).await;
    assert_eq!(endpoints["items"][0]["id"], endpoint["id"]);
    // The bus goes on where it was: a new event is seen once, and only it.
    let response = client
        .post(format!("{}/hooks/moving/ingest", server.base))
        .json(&json!({"n": 5}))
        .send()
        .await
        .unwrap();
    let id = crate::support::execution_id(response).await;
    assert_eq!(
        wait_for_execution(&client, &server.base, &id).await["status"],
        "succeeded"
    );
    wait_until("the subscriber to see the new event", async || {
        (executions_of(&client, &server.base, "seen").await.len() == 6).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        executions_of(&client, &server.base, "seen").await.len(),
        6,
        "no event twice"
    );
    assert_eq!(server.terminate(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_job_started_on_one_node_is_followed_on_another() {
    let Some(store) = postgres_schema().await else {
        return;
    };
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("moving.yaml"), MOVING).unwrap();
    let data: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<_> = data
        .iter()
        .map(|data| ServeProcess::start(folder.path(), data.path(), &["--store", &store]))
        .collect();
    let client = reqwest::Client::new();
    for n in 0..3 {
        let response = client
            .post(format!("{}/hooks/moving/ingest", nodes[0].base))
            .json(&json!({"n": n}))
            .send()
            .await
            .unwrap();
        let id = crate::support::execution_id(response).await;
        wait_for_execution(&client, &nodes[0].base, &id).await;
    }
    let job = post_json(
        &client,
        &format!("{}/api/v1/executions/replay", nodes[0].base),
        &json!({"flow": "ingest"}),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let done = wait_until("the job to end, read from the other node", async || {
        let job: Value = client
            .get(format!("{}/api/v1/jobs/{id}", nodes[1].base))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (job["state"] == "done").then_some(job)
    })
    .await;
    assert_eq!(done["applied"], 3, "{done:#}");
    assert_eq!(done["action"], "replay");
    for node in nodes {
        assert_eq!(node.terminate(), 0);
    }
}
