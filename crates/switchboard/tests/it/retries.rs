//! Retries: a step that fails in a way that may pass waits as a durable timer
//! (`retrying`), holding no worker, and is tried again with the same idempotency key,
//! across restarts too.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Receiver, ServeProcess, TestServer, execution_id, wait_for_execution, wait_for_state,
};

fn project(receiver: &str, retry: &str) -> String {
    format!(
        r#"
name: shop
flows:
  push:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: shape
        transform: '{{id: .id}}'
      - id: send
        http: {{ method: POST, url: "{receiver}/orders", json: '$steps.shape' }}
        retry: {retry}
"#
    )
}

fn is_retrying(execution: &Value) -> bool {
    execution["status"] == "retrying"
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_key_until_it_passes() {
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 503;
    let retry = "{ attempts: 10, backoff: fixed, initial: 300ms, jitter: false }";
    let server = TestServer::start(&project(&receiver.base, retry)).await;
    let (status, body) = server
        .post_hook("/hooks/shop/push", &json!({"id": 7}))
        .await;
    assert_eq!(status, 202);
    let id = body["execution_id"].as_str().unwrap();

    let waiting = wait_for_state(&server.client, &server.base, id, is_retrying).await;
    assert_eq!(waiting["error"]["code"], "http_status");
    assert_eq!(waiting["error"]["step"], "send");
    assert!(waiting["next_attempt_at"].is_string(), "{waiting:#}");
    assert_eq!(waiting["steps"][0]["id"], "shape");
    assert_eq!(waiting["steps"][1]["status"], "failed");
    assert_eq!(
        waiting["steps"][1]["output"]["status"], 503,
        "the answer of each attempt is kept"
    );
    let logged = waiting["log"][0]["message"].as_str().unwrap();
    assert!(
        logged.starts_with("attempt 1 of 10 failed: POST"),
        "{logged}"
    );
    assert!(logged.ends_with("next attempt in 300ms"), "{logged}");

    *receiver.status.lock().unwrap() = 200;
    let execution = server.finished_execution(id).await;
    assert_eq!(execution["status"], "succeeded");
    let sends: Vec<_> = execution["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["id"] == "send")
        .collect();
    let attempts: Vec<_> = sends
        .iter()
        .map(|step| step["attempt"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=sends.len() as u64).collect();
    assert_eq!(attempts, expected, "one record per attempt, numbered");
    assert_eq!(sends.last().unwrap()["status"], "succeeded");
    assert_eq!(
        execution["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|step| step["id"] == "shape")
            .count(),
        1,
        "a finished step is not run again"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), sends.len());
    let keys: Vec<_> = requests
        .iter()
        .map(|request| request.headers["idempotency-key"].clone())
        .collect();
    assert!(
        keys.iter().all(|key| key == &format!("{id}.send")),
        "{keys:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn retry_after_sets_the_next_attempt() {
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 429;
    receiver
        .headers
        .lock()
        .unwrap()
        .push(("retry-after", String::from("2")));
    let retry = "{ attempts: 3, backoff: fixed, initial: 10ms, jitter: false, max: 1m }";
    let server = TestServer::start(&project(&receiver.base, retry)).await;
    let (_, body) = server
        .post_hook("/hooks/shop/push", &json!({"id": 1}))
        .await;
    let id = body["execution_id"].as_str().unwrap();
    let waiting = wait_for_state(&server.client, &server.base, id, is_retrying).await;
    let failed_at = switchboard_core::Timestamp::parse_rfc3339(
        waiting["steps"][1]["finished_at"].as_str().unwrap(),
    )
    .unwrap();
    let next =
        switchboard_core::Timestamp::parse_rfc3339(waiting["next_attempt_at"].as_str().unwrap())
            .unwrap();
    let wait = next.duration_since(failed_at);
    assert!(
        wait >= Duration::from_millis(1900) && wait <= Duration::from_millis(2500),
        "waits {wait:?}, not 10ms"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_last_attempt_fails_the_execution_and_a_4xx_is_not_retried() {
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 500;
    let retry = "{ attempts: 3, backoff: exponential, initial: 10ms, jitter: false }";
    let server = TestServer::start(&project(&receiver.base, retry)).await;
    let execution = server.run_hook("/hooks/shop/push", &json!({"id": 1})).await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(receiver.requests().len(), 3);
    let last = execution["log"].as_array().unwrap().last().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        last.ends_with("answered 500 (attempt 3 of 3, the last)"),
        "{last}"
    );

    *receiver.status.lock().unwrap() = 422;
    let execution = server.run_hook("/hooks/shop/push", &json!({"id": 2})).await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(
        receiver.requests().len(),
        4,
        "a 422 is the request's fault: no retry"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_retry_survives_a_restart() {
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 503;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("shop.yaml");
    let retry = "{ attempts: 5, backoff: fixed, initial: 1s, jitter: false }";
    std::fs::write(&file, project(&receiver.base, retry)).unwrap();
    let data = folder.path().join("data");
    let client = reqwest::Client::new();

    let server = ServeProcess::start(&file, &data, &[]);
    let response = client
        .post(format!("{}/hooks/shop/push", server.base))
        .json(&json!({"id": 9}))
        .send()
        .await
        .unwrap();
    let id = execution_id(response).await;
    wait_for_state(&client, &server.base, &id, is_retrying).await;
    assert_eq!(
        server.terminate(),
        0,
        "a waiting retry holds no worker: shutdown is quick"
    );

    *receiver.status.lock().unwrap() = 200;
    let server = ServeProcess::start(&file, &data, &[]);
    let execution = wait_for_execution(&client, &server.base, &id).await;
    assert_eq!(execution["status"], "succeeded");
    let keys: Vec<_> = receiver
        .requests()
        .iter()
        .map(|request| {
            request.headers["idempotency-key"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(keys.len() >= 2);
    assert!(
        keys.iter().all(|key| *key == format!("{id}.send")),
        "{keys:?}"
    );
    assert_eq!(server.terminate(), 0);
}

#[tokio::test]
async fn the_idempotency_header_can_be_renamed_or_left_out() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&format!(
        r#"
name: shop
flows:
  push:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: renamed
        http: {{ method: POST, url: "{base}/a", idempotency_header: X-Request-Key }}
      - id: without
        http: {{ method: POST, url: "{base}/b", idempotency: false }}
"#,
        base = receiver.base
    ))
    .await;
    let execution = server.run_hook("/hooks/shop/push", &json!({})).await;
    assert_eq!(execution["status"], "succeeded");
    let id = execution["id"].as_str().unwrap();
    let requests = receiver.requests();
    assert_eq!(
        requests[0].headers["x-request-key"],
        format!("{id}.renamed").as_str()
    );
    assert!(!requests[0].headers.contains_key("idempotency-key"));
    assert!(!requests[1].headers.contains_key("idempotency-key"));
    assert!(!requests[1].headers.contains_key("x-request-key"));
    server.stop().await;
}

fn failing_project(receiver: &str) -> String {
    format!(
        r#"
name: shop
flows:
  push:
    trigger: {{ webhook: {{}} }}
    on_error: compensate
    steps:
      - id: send
        http: {{ method: POST, url: "{receiver}/orders", json: . }}
        retry: {{ attempts: 2, backoff: fixed, initial: 10ms, jitter: false }}
  compensate:
    trigger: {{ error: {{}} }}
    steps:
      - id: undo
        http: {{ method: POST, url: "{receiver}/undo", json: '{{failed: .execution_id, code: .error.code, order: .input}}' }}
  slow:
    trigger: {{ webhook: {{}} }}
    timeout: 300ms
    steps:
      - id: wait
        http: {{ url: "{receiver}/slow", timeout: 10s }}
"#
    )
}

#[tokio::test]
async fn a_flow_that_fails_for_good_starts_its_on_error_flow() {
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 500;
    let server = TestServer::start(&failing_project(&receiver.base)).await;
    let failed = server
        .run_hook("/hooks/shop/push", &json!({"order": 12}))
        .await;
    assert_eq!(failed["status"], "failed");
    let id = failed["id"].as_str().unwrap();
    *receiver.status.lock().unwrap() = 200;
    for _ in 0..500 {
        if receiver
            .requests()
            .iter()
            .any(|request| request.path == "/undo")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let undo = receiver
        .requests()
        .into_iter()
        .find(|request| request.path == "/undo")
        .expect("the on_error flow did not run");
    assert_eq!(
        undo.body,
        json!({"failed": id, "code": "http_status", "order": {"order": 12}})
    );
    let (_, listed) = server.get_json("/api/v1/executions?flow=compensate").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "started once");
    server.stop().await;
}

#[tokio::test]
async fn an_execution_that_outlives_its_timeout_fails() {
    let receiver = Receiver::start().await;
    *receiver.delay.lock().unwrap() = Duration::from_secs(5);
    let server = TestServer::start(&failing_project(&receiver.base)).await;
    let started = std::time::Instant::now();
    let execution = server.run_hook("/hooks/shop/slow", &json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stopped at the timeout, not the answer"
    );
    assert_eq!(execution["status"], "failed");
    assert_eq!(execution["error"]["code"], "execution_timeout");
    assert_eq!(
        execution["error"]["message"],
        "the execution did not finish within its timeout of 300ms"
    );
    server.stop().await;
}

fn flow_control_project(receiver: &str) -> String {
    format!(
        r#"
name: shop
config:
  base: {{ default: "{receiver}" }}
flows:
  events:
    trigger: {{ webhook: {{}} }}
    ordering: {{ key: .customer }}
    steps:
      - id: send
        http:
          method: POST
          url: '${{{{ if .fail then "http://127.0.0.1:9" else $config.base end }}}}/events'
          json: .
        retry: {{ attempts: 3, backoff: fixed, initial: 300ms, jitter: false }}
  exports:
    trigger: {{ webhook: {{}} }}
    concurrency: {{ limit: 2 }}
    steps:
      - id: send
        http: {{ method: POST, url: "{receiver}/exports", json: . }}
  edits:
    trigger: {{ webhook: {{}} }}
    debounce: {{ key: .doc, period: 300ms }}
    steps:
      - id: send
        http: {{ method: POST, url: "{receiver}/edits", json: . }}
  pings:
    trigger: {{ webhook: {{}} }}
    throttle: {{ rate: 2/500ms }}
    steps:
      - id: send
        http: {{ method: POST, url: "{receiver}/pings", json: . }}
"#
    )
}

#[tokio::test]
async fn a_failing_head_holds_back_its_key_and_only_its_key() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&flow_control_project(&receiver.base)).await;
    let post = |body: Value| {
        let server = &server;
        async move {
            let (status, accepted) = server.post_hook("/hooks/shop/events", &body).await;
            assert_eq!(status, 202);
            accepted["execution_id"].as_str().unwrap().to_owned()
        }
    };
    let alice_1 = post(json!({"customer": "alice", "n": 1, "fail": true})).await;
    let alice_2 = post(json!({"customer": "alice", "n": 2})).await;
    let bob_1 = post(json!({"customer": "bob", "n": 1})).await;
    let bob_2 = post(json!({"customer": "bob", "n": 2})).await;

    assert_eq!(
        server.finished_execution(&bob_2).await["status"],
        "succeeded"
    );
    let (_, waiting) = server
        .get_json(&format!("/api/v1/executions/{alice_2}"))
        .await;
    assert_eq!(
        waiting["status"], "queued",
        "alice's second waits behind her first"
    );
    let (_, head) = server
        .get_json(&format!("/api/v1/executions/{alice_1}"))
        .await;
    assert_ne!(
        head["status"], "failed",
        "alice's first is still being retried"
    );

    assert_eq!(
        server.finished_execution(&alice_1).await["status"],
        "failed"
    );
    assert_eq!(
        server.finished_execution(&alice_2).await["status"],
        "succeeded"
    );
    assert_eq!(
        server.finished_execution(&bob_1).await["status"],
        "succeeded"
    );
    let order: Vec<String> = receiver
        .requests()
        .iter()
        .map(|request| {
            format!(
                "{}{}",
                request.body["customer"].as_str().unwrap(),
                request.body["n"]
            )
        })
        .collect();
    assert_eq!(
        order,
        ["bob1", "bob2", "alice2"],
        "each key in arrival order"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_concurrency_limit_caps_running_executions() {
    let receiver = Receiver::start().await;
    *receiver.delay.lock().unwrap() = Duration::from_millis(300);
    let server = TestServer::start(&flow_control_project(&receiver.base)).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        let (_, accepted) = server
            .post_hook("/hooks/shop/exports", &json!({"n": n}))
            .await;
        ids.push(accepted["execution_id"].as_str().unwrap().to_owned());
    }
    let mut most = 0;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 1000, "the exports did not finish");
        let (_, running) = server
            .get_json("/api/v1/executions?flow=exports&status=running")
            .await;
        let count = running["items"].as_array().unwrap().len();
        assert!(count <= 2, "{count} ran at once with a limit of 2");
        most = most.max(count);
        let (_, done) = server
            .get_json("/api/v1/executions?flow=exports&status=succeeded")
            .await;
        if done["items"].as_array().unwrap().len() == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most, 2, "the limit is used, not just respected");
    server.stop().await;
}

#[tokio::test]
async fn a_debounce_runs_the_last_of_a_burst() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&flow_control_project(&receiver.base)).await;
    let mut ids = Vec::new();
    for (doc, n) in [(1, 1), (1, 2), (2, 1), (1, 3)] {
        let (status, accepted) = server
            .post_hook("/hooks/shop/edits", &json!({"doc": doc, "n": n}))
            .await;
        assert_eq!(status, 202);
        ids.push(accepted["execution_id"].as_str().unwrap().to_owned());
    }
    for id in &ids[..2] {
        let superseded = server.finished_execution(id).await;
        assert_eq!(superseded["status"], "cancelled");
        assert_eq!(superseded["error"]["code"], "debounced");
    }
    assert_eq!(
        server.finished_execution(&ids[2]).await["status"],
        "succeeded"
    );
    assert_eq!(
        server.finished_execution(&ids[3]).await["status"],
        "succeeded"
    );
    let mut sent: Vec<(i64, i64)> = receiver
        .requests()
        .iter()
        .map(|request| {
            (
                request.body["doc"].as_i64().unwrap(),
                request.body["n"].as_i64().unwrap(),
            )
        })
        .collect();
    sent.sort_unstable();
    assert_eq!(
        sent,
        [(1, 3), (2, 1)],
        "one run per document: its last edit"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_throttle_spaces_out_starts() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&flow_control_project(&receiver.base)).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let (_, accepted) = server
            .post_hook("/hooks/shop/pings", &json!({"n": n}))
            .await;
        ids.push(accepted["execution_id"].as_str().unwrap().to_owned());
    }
    let mut starts = Vec::new();
    for id in &ids {
        let execution = server.finished_execution(id).await;
        assert_eq!(execution["status"], "succeeded");
        let started =
            switchboard_core::Timestamp::parse_rfc3339(execution["started_at"].as_str().unwrap())
                .unwrap();
        starts.push(started.millis());
    }
    starts.sort_unstable();
    for window in starts.windows(3) {
        assert!(
            window[2] - window[0] >= 500,
            "three starts within 500 ms: {starts:?}"
        );
    }
    server.stop().await;
}
