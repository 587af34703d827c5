//! Nothing acknowledged is lost, and no effect is applied twice, when the process is
//! killed with SIGKILL.
//!
//! The real binary serves a flow whose `http` step calls a receiver that records every
//! `Idempotency-Key`; several clients post webhooks concurrently and keep the execution
//! ids of the requests that were answered 202; the process is killed at a random moment
//! and restarted on the same data folder, several times. At the end every acknowledged id
//! must have its execution, every execution must reach `succeeded`, and the receiver must
//! have seen each one's key. A receiver that applies each key once applies each effect
//! once; the raw repeats (a crash between the answer and the checkpoint) are reported.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Receiver, ServeProcess, wait_for_execution};

const CLIENTS: usize = 8;
const KILLS: usize = 3;
fn project(receiver: &str) -> String {
    format!(
        r#"
name: crash
flows:
  ingest:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: shape
        transform: '{{n: .n, doubled: (.n * 2)}}'
      - id: send
        http: {{ method: POST, url: "{receiver}/effects", json: '$steps.shape' }}
      - id: note
        log: 'got ${{{{ $steps.shape.n }}}}'
"#
    )
}

/// A random wait from `low` to `high` milliseconds.
fn random_millis(low: u64, high: u64) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_millis(low + random % (high - low))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_webhooks_survive_sigkill() {
    let receiver = Receiver::start().await;
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("crash.yaml"), project(&receiver.base)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut failed_requests = 0usize;

    for round in 0..KILLS {
        let server = ServeProcess::start(folder.path(), data.path(), &["--workers", "4"]);
        let base = server.base.clone();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client_index| {
                let base = base.clone();
                let acknowledged = Arc::clone(&acknowledged);
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut failures = 0usize;
                    for request in 0.. {
                        let n = (round * 1_000_000 + client_index * 10_000 + request) as i64;
                        match client
                            .post(format!("{base}/hooks/crash/ingest"))
                            .json(&json!({"n": n}))
                            .send()
                            .await
                        {
                            Ok(response) if response.status() == 202 => {
                                if let Ok(body) = response.json::<Value>().await {
                                    let id = body["execution_id"]
                                        .as_str()
                                        .unwrap_or_default()
                                        .to_owned();
                                    acknowledged.lock().unwrap().push((id, n));
                                }
                            }
                            Ok(response) => panic!("unexpected status {}", response.status()),
                            Err(_) => {
                                failures += 1;
                                return failures;
                            }
                        }
                    }
                    failures
                })
            })
            .collect();
        tokio::time::sleep(random_millis(400, 1600)).await;
        server.kill();
        for client in clients {
            failed_requests += client.await.unwrap();
        }
    }

    let server = ServeProcess::start(folder.path(), data.path(), &[]);
    let client = reqwest::Client::new();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "too little load to mean anything: {}",
        acknowledged.len()
    );
    for (id, n) in &acknowledged {
        let execution = wait_for_execution(&client, &server.base, id).await;
        assert_eq!(execution["status"], "succeeded", "{execution:#}");
        assert_eq!(execution["input"]["n"], json!(n));
        assert_eq!(execution["steps"][0]["output"]["doubled"], json!(n * 2));
    }
    let ids: HashSet<&str> = acknowledged.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids.len(),
        acknowledged.len(),
        "one execution per acknowledged event"
    );

    let requests = receiver.requests();
    let keys: Vec<String> = requests
        .iter()
        .map(|request| {
            request.headers["idempotency-key"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let applied: HashSet<&str> = keys.iter().map(String::as_str).collect();
    for (id, _) in &acknowledged {
        assert!(
            applied.contains(format!("{id}.send").as_str()),
            "{id} never reached the receiver"
        );
    }
    let repeats = keys.len() - applied.len();
    println!(
        "crash test: {} acknowledged webhooks from {CLIENTS} clients over {KILLS} SIGKILLs at random moments \
         ({failed_requests} requests cut off by the kills); all succeeded; the receiver applied {} effects once each \
         and saw {repeats} raw repeats of a key (a kill between the answer and the checkpoint)",
        acknowledged.len(),
        applied.len()
    );
    assert_eq!(server.terminate(), 0);
}
