//! Alerts: a rule fires once when its condition starts to hold, stays quiet while it
//! holds, and resolves once when it stops, notifying a webhook and an alert flow.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Receiver, ServeProcess, TestServer, execution_id, wait_for_execution};

fn project(receiver: &str) -> String {
    format!(
        r#"
name: shop
config:
  token: {{ default: "t0ken" }}
flows:
  orders:
    trigger: {{ webhook: {{ accept: json }} }}
    steps:
      - id: check
        transform: 'if .fail then error("order \(.id) refused") else . end'
  page-on-call:
    trigger: {{ alert: {{}} }}
    steps:
      - id: page
        http: {{ method: POST, url: "{receiver}/paged", json: '{{text: (.status + ": " + .summary)}}' }}
alerts:
  orders-failing:
    description: Orders are being refused.
    flow: orders
    when: {{ failures: {{ count: 2, within: 3s }} }}
    notify:
      - webhook: "{receiver}/alerts"
        headers: {{ X-Token: "${{{{ $config.token }}}}" }}
      - flow: page-on-call
"#
    )
}

async fn fail_an_order(server: &TestServer, id: u32) {
    let order = json!({"id": id, "fail": true});
    let execution = server.run_hook("/hooks/shop/orders", &order).await;
    assert_eq!(execution["status"], "failed");
}

/// Waits until the receiver holds `count` requests (10 s at most).
async fn wait_for_requests(receiver: &Receiver, count: usize) {
    for _ in 0..1000 {
        if receiver.requests().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the receiver got {} requests, not {count}",
        receiver.requests().len()
    );
}

/// The requests to `path`, as bodies.
fn bodies(receiver: &Receiver, path: &str) -> Vec<Value> {
    receiver
        .requests()
        .into_iter()
        .filter(|request| request.path == path)
        .map(|request| request.body)
        .collect()
}

#[tokio::test]
async fn an_alert_fires_once_and_resolves_once() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&project(&receiver.base)).await;

    fail_an_order(&server, 1).await;
    // The rule is evaluated every 100 ms in tests: several evaluations see one failure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.requests().is_empty(),
        "one failure is under the threshold"
    );
    let (_, alerts) = server.get_json("/api/v1/alerts").await;
    assert_eq!(alerts["items"][0]["name"], "orders-failing");
    assert_eq!(alerts["items"][0]["state"], Value::Null);

    fail_an_order(&server, 2).await;
    wait_for_requests(&receiver, 2).await;
    let fired = bodies(&receiver, "/alerts");
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["status"], "firing");
    assert_eq!(fired[0]["alert"], "orders-failing");
    assert_eq!(fired[0]["integration"], "shop");
    assert_eq!(fired[0]["condition"], "failures");
    assert_eq!(fired[0]["value"], 2.0);
    let summary = fired[0]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("2 executions of shop/orders failed within 3s"),
        "{summary}"
    );
    let webhook = receiver
        .requests()
        .into_iter()
        .find(|request| request.path == "/alerts")
        .unwrap();
    assert_eq!(webhook.headers["x-token"], "t0ken");
    let paged = bodies(&receiver, "/paged");
    assert_eq!(paged.len(), 1);
    assert!(
        paged[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("firing: 2 executions")
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.requests().len(),
        2,
        "no repeat while the condition holds"
    );
    let (_, alerts) = server.get_json("/api/v1/alerts").await;
    assert_eq!(alerts["items"][0]["state"]["firing"], true);
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics
            .contains(r#"switchboard_alerts_firing{integration="shop",alert="orders-failing"} 1"#),
        "{metrics}"
    );

    // The first failure leaves the 3 s window: one failure is under the threshold again.
    wait_for_requests(&receiver, 4).await;
    let resolved = bodies(&receiver, "/alerts");
    assert_eq!(resolved.len(), 2);
    assert_eq!(resolved[1]["status"], "resolved");
    assert_eq!(
        resolved[1]["since"], fired[0]["since"],
        "since when it had been firing"
    );
    assert!(
        bodies(&receiver, "/paged")[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("resolved: 1 executions")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.requests().len(), 4, "no repeat once resolved");

    let (_, notifications) = server
        .get_json("/api/v1/executions?flow=alert.orders-failing.webhook.0")
        .await;
    let statuses: Vec<_> = notifications["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|execution| execution["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["succeeded", "succeeded"],
        "each notification is an execution"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_is_not_announced_again_after_a_restart() {
    let receiver = Receiver::start().await;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("shop.yaml");
    std::fs::write(&file, project(&receiver.base)).unwrap();
    let data = folder.path().join("data");
    let flags = ["--alert-interval", "100ms"];
    let client = reqwest::Client::new();

    let server = ServeProcess::start(&file, &data, &flags);
    for id in 0..2 {
        let response = client
            .post(format!("{}/hooks/shop/orders", server.base))
            .json(&json!({"id": id, "fail": true}))
            .send()
            .await
            .unwrap();
        let id = execution_id(response).await;
        wait_for_execution(&client, &server.base, &id).await;
    }
    wait_for_requests(&receiver, 2).await;
    assert_eq!(server.terminate(), 0);

    let server = ServeProcess::start(&file, &data, &flags);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let firing = bodies(&receiver, "/alerts");
    assert_eq!(
        firing.len(),
        1,
        "the restarted server knows the alert already fired"
    );
    let alerts: Value = client
        .get(format!("{}/api/v1/alerts", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts["items"][0]["state"]["firing"], true);
    assert_eq!(server.terminate(), 0);
}
