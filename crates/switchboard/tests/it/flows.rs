//! Flow patterns: branching, loops, parallel branches, state, `fail`, `when`, and the
//! durable `sleep`, run by the real server over HTTP.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::Secrets;

use crate::support::{Receiver, ServeProcess, TestServer, wait_for_execution, wait_for_state};

fn blocks(receiver: &str) -> String {
    format!(
        r#"
name: shop
flows:
  order:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: size
        if:
          condition: .total > 100
          then:
            - {{ id: big, transform: '"big"' }}
          else:
            - {{ id: small, transform: '"small"' }}
      - id: channel
        switch:
          value: .channel
          cases:
            web: [{{ id: web, transform: '"from the web"' }}]
          default: [{{ id: other, transform: '"elsewhere"' }}]
      - id: lines
        for_each:
          items: .lines
          concurrency: 3
          steps:
            - id: priced
              transform: '{{sku: $item.sku, amount: ($item.qty * $item.price), index: $index}}'
            - id: post
              http: {{ method: POST, url: "{receiver}/lines", json: '$steps.priced' }}
            - id: done
              transform: '$steps.priced.amount'
      - id: enrich
        parallel:
          branches:
            customer: [{{ id: customer, transform: '{{email: .email}}' }}]
            totals: [{{ id: sum, transform: '$steps.lines | add' }}]
      - id: previous
        state: {{ get: last_order, default: '"none"' }}
      - id: remember
        state: {{ set: last_order, value: .id }}
      - id: gift
        when: .gift == true
        log: a gift
      - id: summary
        transform: '{{size: $steps.size, big: $steps.big, channel: $steps.web, lines: $steps.lines, enrich: $steps.enrich, sum: $steps.sum, previous: $steps.previous}}'
      - id: refuse
        when: .total > 1000
        fail: {{ message: '"order \(.id) is too large"', code: '"too_large"' }}
"#
    )
}

#[tokio::test]
async fn blocks_branch_loop_and_merge() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&blocks(&receiver.base)).await;
    let order = json!({
        "id": "o-1", "total": 150, "channel": "web", "email": "a@example.com",
        "lines": [{"sku": "a", "qty": 2, "price": 10}, {"sku": "b", "qty": 1, "price": 5}, {"sku": "c", "qty": 3, "price": 1}],
    });
    let execution = server.run_hook("/hooks/shop/order", &order).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    let steps = execution["steps"].as_array().unwrap();
    let summary = &steps.iter().find(|step| step["id"] == "summary").unwrap()["output"];
    assert_eq!(summary["size"], json!({"branch": "then"}));
    assert_eq!(summary["big"], "big");
    assert_eq!(summary["channel"], "from the web");
    assert_eq!(
        summary["lines"],
        json!([20, 5, 3]),
        "each item's last output, in order"
    );
    assert_eq!(
        summary["enrich"],
        json!({"customer": {"email": "a@example.com"}, "totals": 28})
    );
    assert_eq!(summary["sum"], 28);
    assert_eq!(summary["previous"], "none");
    let ids: Vec<&str> = steps
        .iter()
        .filter_map(|step| step["id"].as_str())
        .collect();
    for id in ["lines[0].priced", "lines[1].post", "lines[2].done", "small"] {
        assert_eq!(ids.contains(&id), id != "small", "{id} in {ids:?}");
    }
    let gift = steps.iter().find(|step| step["id"] == "gift").unwrap();
    assert_eq!(gift["status"], "skipped");
    // Each item's request carries its own idempotency key.
    let mut keys: Vec<String> = receiver
        .requests()
        .iter()
        .map(|request| {
            request.headers["idempotency-key"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    keys.sort();
    let id = execution["id"].as_str().unwrap();
    assert_eq!(
        keys,
        [0, 1, 2].map(|index| format!("{id}.lines[{index}].post"))
    );

    // State persists across executions; `fail` ends an execution with its own code.
    let large = json!({"id": "o-2", "total": 5000, "channel": "phone", "email": "b@example.com", "lines": [], "gift": true});
    let execution = server.run_hook("/hooks/shop/order", &large).await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(execution["error"]["code"], "too_large");
    assert_eq!(execution["error"]["message"], "order o-2 is too large");
    let steps = execution["steps"].as_array().unwrap();
    let summary = &steps.iter().find(|step| step["id"] == "summary").unwrap()["output"];
    assert_eq!(summary["previous"], "o-1");
    assert_eq!(summary["channel"], Value::Null, "the web case did not run");
    assert_eq!(summary["lines"], json!([]));
    let gift = steps.iter().find(|step| step["id"] == "gift").unwrap();
    assert_eq!(gift["status"], "succeeded");

    // A list that is not a list is a clear failure at the step.
    let wrong = json!({"id": "o-3", "total": 1, "channel": "web", "lines": {"sku": "a"}});
    let execution = server.run_hook("/hooks/shop/order", &wrong).await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(execution["error"]["step"], "lines");
    assert_eq!(
        execution["error"]["message"],
        "`items` gave an object, not a list"
    );
    server.stop().await;
}

const SLEEPY: &str = r#"
name: naps
flows:
  nap:
    trigger: { webhook: {} }
    steps:
      - { id: before, transform: '"awake"' }
      - { id: wait, sleep: 1s }
      - { id: after, transform: '$steps.before' }
  quick:
    trigger: { webhook: {} }
    steps:
      - { id: only, transform: '"done"' }
"#;

/// The store's count of committed writes, from /metrics.
async fn committed_writes(server: &TestServer) -> f64 {
    let metrics = server.get_text("/metrics").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("switchboard_store_commit_batch_writes_sum "))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn steps_that_only_compute_are_committed_together() {
    let steps: String = (0..100)
        .map(|n| format!("      - {{ id: s{n}, transform: '.n + 1' }}\n"))
        .collect();
    let yaml = format!(
        "name: shop\nflows:\n  count:\n    trigger: {{ webhook: {{}} }}\n    steps:\n      - {{ id: start, transform: '0' }}\n{steps}"
    );
    let server = TestServer::start(&yaml).await;
    let before = committed_writes(&server).await;
    let execution = server
        .run_hook("/hooks/shop/count", &json!({"n": 41}))
        .await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert_eq!(execution["output"], 42, "{execution}");
    assert_eq!(
        execution["steps"].as_array().unwrap().len(),
        101,
        "{execution}"
    );
    let writes = committed_writes(&server).await - before;
    // Queue, lease, one commit of the first 64 records and the end, and perhaps the
    // node's heartbeat: not one per step.
    assert!(
        writes <= 11.0,
        "{writes} writes for one execution of 101 transforms"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_sleeping_execution_holds_no_worker() {
    let server = TestServer::start_configured(SLEEPY, Secrets::default(), |config| {
        config.workers = 1;
    })
    .await;
    let (status, accepted) = server.post_hook("/hooks/naps/nap", &json!({})).await;
    assert_eq!(status, 202);
    let id = accepted["execution_id"].as_str().unwrap();
    let waiting = wait_for_state(&server.client, &server.base, id, |execution| {
        execution["status"] == "waiting"
    })
    .await;
    assert!(waiting["resumes_at"].is_string(), "{waiting:#}");
    // With one worker, another flow runs while the first sleeps.
    let quick = server.run_hook("/hooks/naps/quick", &json!({})).await;
    assert_eq!(quick["status"], "succeeded");
    let (_, still) = server.get_json(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(still["status"], "waiting");
    let done = server.finished_execution(id).await;
    assert_eq!(done["status"], "succeeded");
    let after = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["id"] == "after")
        .unwrap();
    assert_eq!(after["output"], "awake");
    server.stop().await;
}

fn crashing(receiver: &str) -> String {
    format!(
        r#"
name: batch
flows:
  items:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: each
        for_each:
          items: '[range(8)]'
          steps:
            - id: post
              http: {{ method: POST, url: "{receiver}/items", json: '{{n: $item}}', timeout: 30s }}
      - {{ id: rest, sleep: 2s }}
      - {{ id: end, transform: '$steps.each | length' }}
"#
    )
}

/// A crash in the middle of a `for_each` resumes at the item it was on: the items
/// before are not sent again. A `sleep` under way when the process stops ends at the
/// time it was set for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_for_each_and_sleep_resumes_where_it_was() {
    let receiver = Receiver::start().await;
    *receiver.delay.lock().unwrap() = Duration::from_millis(150);
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("batch.yaml"), crashing(&receiver.base)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(folder.path(), data.path(), &[]);
    let client = reqwest::Client::new();
    let accepted: Value = client
        .post(format!("{}/hooks/batch/items", server.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    while receiver.requests().len() < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let sent_before = receiver.requests().len();

    let server = ServeProcess::start(folder.path(), data.path(), &[]);
    let waiting = wait_for_state(&client, &server.base, &id, |execution| {
        execution["status"] == "waiting"
    })
    .await;
    let resumes_at = waiting["resumes_at"].as_str().unwrap().to_owned();
    // Stopped while it sleeps, it keeps its wake-up time.
    assert_eq!(server.terminate(), 0);
    let server = ServeProcess::start(folder.path(), data.path(), &[]);
    let (status, done) = {
        let done = wait_for_execution(&client, &server.base, &id).await;
        (done["status"].clone(), done)
    };
    assert_eq!(status, "succeeded", "{done:#}");
    let sleep = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["id"] == "rest")
        .unwrap();
    assert_eq!(sleep["output"]["until"], resumes_at);
    assert!(done["finished_at"].as_str().unwrap() >= resumes_at.as_str());
    let end = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["id"] == "end")
        .unwrap();
    assert_eq!(end["output"], 8);

    let requests = receiver.requests();
    let mut per_item = [0usize; 8];
    for request in &requests {
        per_item[request.body["n"].as_u64().unwrap() as usize] += 1;
    }
    assert!(per_item.iter().all(|&count| count >= 1), "{per_item:?}");
    // Only the item in flight at the kill may have been sent twice.
    let repeated = per_item.iter().filter(|&&count| count > 1).count();
    assert!(repeated <= 1, "{per_item:?}");
    assert!(
        sent_before >= 4 && requests.len() <= 9,
        "{sent_before} then {}",
        requests.len()
    );
    server.terminate();
}
