//! Nothing acknowledged is lost when the process is killed with SIGKILL.
//!
//! The real binary serves a flow; several clients post webhooks concurrently and keep the
//! execution ids of the requests that were answered 202; the process is killed mid-stream
//! and restarted on the same data folder, several times. At the end every acknowledged id
//! must have its execution, and every execution must reach `succeeded`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{ServeProcess, wait_for_execution};

const CLIENTS: usize = 8;
const KILLS: usize = 3;
const PROJECT: &str = r#"
name: crash
flows:
  ingest:
    trigger: { webhook: {} }
    steps:
      - id: shape
        transform: '{n: .n, doubled: (.n * 2)}'
      - id: note
        log: 'got ${{ $steps.shape.n }}'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_webhooks_survive_sigkill() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("crash.yaml"), PROJECT).unwrap();
    let data = tempfile::tempdir().unwrap();
    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut failed_requests = 0usize;

    for round in 0..KILLS {
        let server = ServeProcess::start(project.path(), data.path(), &["--workers", "4"]);
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
        tokio::time::sleep(Duration::from_millis(700 + 300 * round as u64)).await;
        server.kill();
        for client in clients {
            failed_requests += client.await.unwrap();
        }
    }

    let server = ServeProcess::start(project.path(), data.path(), &[]);
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
    println!(
        "crash test: {} acknowledged webhooks from {CLIENTS} clients over {KILLS} SIGKILLs ({failed_requests} requests cut off by the kills); all succeeded",
        acknowledged.len()
    );
    assert_eq!(server.terminate(), 0);
}
