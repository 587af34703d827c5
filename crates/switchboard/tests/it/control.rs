//! An operator's hands on executions: retry a failed one from its failed step, replay
//! one as a new execution, cancel a waiting or running one.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Receiver, TestServer, wait_for_state};

fn project(receiver: &str) -> String {
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
        retry: {{ attempts: 3, backoff: fixed, initial: 10s, jitter: false }}
"#
    )
}

async fn post(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server.client.post(server.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls an execution until its status is `status`.
async fn wait_for_status(server: &TestServer, id: &str, status: &str) -> Value {
    wait_for_state(&server.client, &server.base, id, |execution| {
        execution["status"] == status
    })
    .await
}

#[tokio::test]
async fn a_failed_execution_is_retried_from_its_failed_step() {
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 422;
    let server = TestServer::start(&project(&receiver.base)).await;
    let failed = server.run_hook("/hooks/shop/push", &json!({"id": 5})).await;
    assert_eq!(failed["status"], "failed");
    let id = failed["id"].as_str().unwrap();

    *receiver.status.lock().unwrap() = 200;
    let (status, queued) = post(&server, &format!("/api/v1/executions/{id}/retry")).await;
    assert_eq!(status, 202, "{queued}");
    // The answer reads the execution after the retry; a worker may already hold it.
    assert!(
        matches!(queued["status"].as_str(), Some("queued" | "running")),
        "{queued}"
    );
    assert_eq!(queued.get("error"), None, "the old error is cleared");
    let done = server.finished_execution(id).await;
    assert_eq!(done["status"], "succeeded");
    let steps: Vec<_> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            (
                step["id"].as_str().unwrap(),
                step["status"].as_str().unwrap(),
                step["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("shape", "succeeded", 1),
            ("send", "failed", 1),
            ("send", "succeeded", 1)
        ],
        "the transform is not run again; the retried step starts its attempts afresh"
    );

    let (status, refused) = post(&server, &format!("/api/v1/executions/{id}/retry")).await;
    assert_eq!(status, 409);
    assert_eq!(refused["error"]["code"], "conflict");
    assert_eq!(
        refused["error"]["message"],
        format!("execution {id} is succeeded; only failed executions can be retried")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_replay_is_a_new_execution_linked_to_the_original() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&project(&receiver.base)).await;
    let original = server.run_hook("/hooks/shop/push", &json!({"id": 8})).await;
    let id = original["id"].as_str().unwrap();
    let (status, replayed) = post(&server, &format!("/api/v1/executions/{id}/replay")).await;
    assert_eq!(status, 202);
    assert_eq!(replayed["replay_of"], id);
    let new_id = replayed["execution_id"].as_str().unwrap();
    assert_ne!(new_id, id);
    let replay = server.finished_execution(new_id).await;
    assert_eq!(replay["status"], "succeeded");
    assert_eq!(replay["replay_of"], id);
    assert_eq!(replay["input"], original["input"]);
    assert_eq!(replay["trigger"], original["trigger"]);
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
    assert_eq!(
        keys,
        [format!("{id}.send"), format!("{new_id}.send")],
        "a replay is a new effect"
    );

    let (status, _) = post(
        &server,
        "/api/v1/executions/exe_01JD3Q1Y0R8Z3T6V9W2X5A7B4C/replay",
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn cancel_stops_a_running_step_and_ends_a_waiting_retry() {
    let receiver = Receiver::start().await;
    *receiver.delay.lock().unwrap() = Duration::from_secs(20);
    let server = TestServer::start(&project(&receiver.base)).await;
    let (_, accepted) = server
        .post_hook("/hooks/shop/push", &json!({"id": 1}))
        .await;
    let running = accepted["execution_id"].as_str().unwrap().to_owned();
    wait_for_status(&server, &running, "running").await;
    while receiver.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, answer) = post(&server, &format!("/api/v1/executions/{running}/cancel")).await;
    assert_eq!(status, 202, "{answer}");
    let cancelled = wait_for_status(&server, &running, "cancelled").await;
    assert_eq!(cancelled["error"]["code"], "cancelled");
    let last = cancelled["log"].as_array().unwrap().last().unwrap()["message"].clone();
    assert_eq!(last, "stopped: the execution was cancelled");
    let (status, _) = post(&server, &format!("/api/v1/executions/{running}/cancel")).await;
    assert_eq!(status, 409, "it has ended");

    *receiver.delay.lock().unwrap() = Duration::ZERO;
    *receiver.status.lock().unwrap() = 503;
    let (_, accepted) = server
        .post_hook("/hooks/shop/push", &json!({"id": 2}))
        .await;
    let waiting = accepted["execution_id"].as_str().unwrap().to_owned();
    wait_for_status(&server, &waiting, "retrying").await;
    let (status, answer) = post(&server, &format!("/api/v1/executions/{waiting}/cancel")).await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "cancelled");

    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"switchboard_executions_finished_total{integration="shop",flow="push",outcome="cancelled",trigger="webhook"} 2"#),
        "both are counted, the running one when it stops: {metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn ended_executions_past_retention_are_deleted() {
    let receiver = Receiver::start().await;
    let server =
        TestServer::start_configured(&project(&receiver.base), Default::default(), |engine| {
            engine.retention = Duration::from_millis(300);
            engine.retention_interval = Duration::from_millis(100);
        })
        .await;
    let ended = server.run_hook("/hooks/shop/push", &json!({"id": 1})).await;
    let id = ended["id"].as_str().unwrap();
    *receiver.delay.lock().unwrap() = Duration::from_secs(20);
    let (_, accepted) = server
        .post_hook("/hooks/shop/push", &json!({"id": 2}))
        .await;
    let running = accepted["execution_id"].as_str().unwrap().to_owned();

    let mut gone = false;
    for _ in 0..300 {
        let (status, _) = server.get_json(&format!("/api/v1/executions/{id}")).await;
        if status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the ended execution was kept past its retention");
    let (status, still) = server
        .get_json(&format!("/api/v1/executions/{running}"))
        .await;
    assert_eq!(
        status, 200,
        "an execution that has not ended is never deleted"
    );
    assert_eq!(still["status"], "running");
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("switchboard_executions_pruned_total 1"),
        "{metrics}"
    );
    let (status, _) = post(&server, &format!("/api/v1/executions/{running}/cancel")).await;
    assert_eq!(status, 202);
    server.stop().await;
}

/// Polls a bulk job until it is done (10 s at most).
async fn finished_job(server: &TestServer, id: &str) -> Value {
    for _ in 0..1000 {
        let (status, job) = server.get_json(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(status, 200);
        if job["state"] == "done" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_retry_and_replay_run_as_jobs_from_the_api_and_the_cli() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&project(&receiver.base)).await;
    let ok = server.run_hook("/hooks/shop/push", &json!({"id": 0})).await;
    assert_eq!(ok["status"], "succeeded");
    *receiver.status.lock().unwrap() = 422;
    for id in 1..=3 {
        let failed = server
            .run_hook("/hooks/shop/push", &json!({"id": id}))
            .await;
        assert_eq!(failed["status"], "failed");
    }
    *receiver.status.lock().unwrap() = 200;

    let started = server
        .client
        .post(server.url("/api/v1/executions/retry"))
        .json(&json!({"flow": "push", "error_code": "http_status"}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let job: Value = started.json().await.unwrap();
    let done = finished_job(&server, job["id"].as_str().unwrap()).await;
    assert_eq!(
        (
            done["total"].clone(),
            done["applied"].clone(),
            done["skipped"].clone()
        ),
        (json!(3), json!(3), json!(0)),
        "{done}"
    );
    let everything = server
        .client
        .post(server.url("/api/v1/executions/retry"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let done = finished_job(&server, everything["id"].as_str().unwrap()).await;
    assert_eq!(done["total"], 4);
    assert_eq!(
        done["skipped"].as_u64().unwrap() + done["applied"].as_u64().unwrap(),
        4
    );
    for _ in 0..1000 {
        let (_, failed) = server.get_json("/api/v1/executions?status=failed").await;
        let (_, waiting) = server.get_json("/api/v1/executions?status=queued").await;
        if failed["items"].as_array().unwrap().is_empty()
            && waiting["items"].as_array().unwrap().is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, succeeded) = server.get_json("/api/v1/executions?status=succeeded").await;
    assert_eq!(
        succeeded["items"].as_array().unwrap().len(),
        4,
        "every retried one passed"
    );

    for (body, path) in [
        (json!({"status": "broken"}), "body.status"),
        (json!({"nope": 1}), "body.nope"),
        (json!({"since": "yesterday"}), "body.since"),
    ] {
        let refused = server
            .client
            .post(server.url("/api/v1/executions/replay"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let error: Value = refused.json().await.unwrap();
        assert_eq!(error["error"]["path"], path);
    }

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "executions",
            "replay",
            "--server",
            &server.base,
            "--flow",
            "push",
            "--status",
            "succeeded",
            "--since",
            "1h",
        ])
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.starts_with("replayed 4 of 4 executions (0 skipped, 0 failed); job job_"),
        "{printed}"
    );
    server.stop().await;
}
