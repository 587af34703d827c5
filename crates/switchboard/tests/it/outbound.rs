//! Outbound webhooks over HTTP: endpoints, messages fanned out to real receivers, signatures
//! checked by the reference `standardwebhooks` library (PyPI), rotation, the retry
//! schedule, `410 Gone`, auto-disable, FIFO under failure, rate limits, the address
//! guard, resend and recover.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_core::Secrets;
use switchboard_engine::EngineConfig;

use crate::support::{
    Captured, Receiver, TestServer, delivery_status, reference_accepts, wait_until,
};

const PROJECT: &str = r#"
name: shop
flows:
  noop:
    trigger: { webhook: {} }
    steps:
      - id: echo
        transform: .
  endpoint-down:
    trigger: { event: { topic: endpoint.disabled } }
    steps:
      - id: page
        transform: '{endpoint: .endpoint_id, reason: .reason}'
  ping:
    trigger: { invoke: { wait: 3s } }
    steps:
      - id: pong
        transform: '"pong"'
  on-alert:
    trigger: { alert: {} }
    steps:
      - id: note
        transform: '{status: .status, summary: .summary}'
alerts:
  endpoints-down:
    when: { endpoint_disabled: {} }
    notify: [{ flow: on-alert }]
"#;

/// A server whose deliveries may reach loopback (the receivers), configured further.
async fn server(configure: impl FnOnce(&mut EngineConfig)) -> TestServer {
    TestServer::start_configured(PROJECT, Secrets::default(), |config| {
        config.outbound.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
        configure(config);
    })
    .await
}

async fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn create_endpoint(server: &TestServer, settings: Value) -> (String, String) {
    let (status, endpoint) = post(server, "/api/v1/endpoints", &settings).await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let (status, secret) = server
        .get_json(&format!("/api/v1/endpoints/{id}/secret"))
        .await;
    assert_eq!(status, 200);
    (id, secret["key"].as_str().unwrap().to_owned())
}

async fn wait_for_requests(receiver: &Receiver, count: usize) -> Vec<Captured> {
    wait_until("the receiver's requests", async || {
        let requests = receiver.requests();
        (requests.len() >= count).then_some(requests)
    })
    .await
}

/// The delivery's execution once it has ended.
async fn ended_delivery(server: &TestServer, message: &str) -> Value {
    wait_until("the delivery to end", async || {
        let (_, message) = server
            .get_json(&format!("/api/v1/messages/{message}"))
            .await;
        let delivery = message["deliveries"][0].clone();
        matches!(delivery["status"].as_str(), Some("succeeded" | "failed")).then_some(delivery)
    })
    .await
}

#[tokio::test]
async fn messages_fan_out_to_matching_endpoints_signed_as_the_reference_library_checks() {
    let server = server(|_| {}).await;
    let orders = Receiver::start().await;
    let invoices = Receiver::start().await;
    let big_orders = Receiver::start().await;
    let (_, orders_secret) = create_endpoint(
        &server,
        json!({"url": format!("{}/orders", orders.base), "event_types": ["order.*"],
               "headers": {"X-Team": "fulfilment"}}),
    )
    .await;
    create_endpoint(
        &server,
        json!({"url": invoices.base, "event_types": ["invoice.paid"]}),
    )
    .await;
    create_endpoint(
        &server,
        json!({"url": big_orders.base, "event_types": ["order.created"], "filter": ".data.total > 100"}),
    )
    .await;

    let message = json!({"event_type": "order.created", "payload": {"id": 7, "total": 42}, "id": "order-7-created"});
    let (status, accepted) = post(&server, "/api/v1/messages", &message).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["id"], "order-7-created");
    assert_eq!(
        accepted["deliveries"].as_array().unwrap().len(),
        1,
        "only the order.* endpoint takes it: {accepted}"
    );

    let request = wait_for_requests(&orders, 1).await.remove(0);
    assert_eq!(request.path, "/orders");
    assert_eq!(request.headers["webhook-id"], "order-7-created");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-team"], "fulfilment");
    assert!(
        request.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("Switchboard-Webhooks/")
    );
    assert_eq!(request.body["type"], "order.created");
    assert_eq!(request.body["data"], json!({"id": 7, "total": 42}));
    if let Some(valid) = reference_accepts(&orders_secret, &request) {
        assert!(valid, "the reference library refused our signature");
    }
    let mut tampered = request.clone();
    tampered.raw = br#"{"type":"order.created","data":{"id":7,"total":1}}"#.to_vec();
    if let Some(valid) = reference_accepts(&orders_secret, &tampered) {
        assert!(!valid, "a tampered body must not verify");
    }

    let delivery = ended_delivery(&server, "order-7-created").await;
    assert_eq!(delivery["status"], "succeeded");

    let (status, again) = post(&server, "/api/v1/messages", &message).await;
    assert_eq!(status, 200, "a repeated id answers the first message");
    assert_eq!(again["created_at"], accepted["created_at"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        orders.requests().len(),
        1,
        "a repeated id is delivered once"
    );
    assert!(invoices.requests().is_empty());
    assert!(big_orders.requests().is_empty(), "the filter keeps it out");

    let big = json!({"event_type": "order.created", "payload": {"id": 8, "total": 500}});
    let (status, _) = post(&server, "/api/v1/messages", &big).await;
    assert_eq!(status, 202);
    wait_for_requests(&big_orders, 1).await;

    let (_, attempts) = server
        .get_json("/api/v1/messages/order-7-created/attempts")
        .await;
    let attempt = &attempts["items"][0];
    assert_eq!(attempt["status"], "succeeded");
    assert_eq!(attempt["response_status"], 200);
    assert_eq!(attempt["response_body"], r#"{"received":true}"#);
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_new_one_until_its_grace_ends() {
    let server = server(|_| {}).await;
    let receiver = Receiver::start().await;
    let (id, old_secret) = create_endpoint(&server, json!({"url": receiver.base})).await;
    let (status, rotated) = post(
        &server,
        &format!("/api/v1/endpoints/{id}/secret/rotate"),
        &json!({"grace_period": "1500ms"}),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert_eq!(rotated["previous"]["key"], old_secret.as_str());

    post(
        &server,
        "/api/v1/messages",
        &json!({"event_type": "a.b", "payload": {}}),
    )
    .await;
    let during = wait_for_requests(&receiver, 1).await.remove(0);
    let signatures = during.headers["webhook-signature"].to_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    for secret in [&old_secret, &new_secret] {
        if let Some(valid) = reference_accepts(secret, &during) {
            assert!(valid, "either secret verifies during the grace period");
        }
    }

    tokio::time::sleep(Duration::from_millis(1600)).await;
    post(
        &server,
        "/api/v1/messages",
        &json!({"event_type": "a.b", "payload": {}}),
    )
    .await;
    let after = wait_for_requests(&receiver, 2).await.remove(1);
    let signatures = after.headers["webhook-signature"].to_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 1, "{signatures}");
    if let Some(valid) = reference_accepts(&new_secret, &after) {
        assert!(valid);
    }
    if let Some(valid) = reference_accepts(&old_secret, &after) {
        assert!(!valid, "the old secret no longer signs after its grace");
    }
    let (_, secrets) = server
        .get_json(&format!("/api/v1/endpoints/{id}/secret"))
        .await;
    assert_eq!(secrets["previous"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn failed_deliveries_follow_the_schedule_until_the_last_attempt() {
    let server = server(|_| {}).await;
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 500;
    let (endpoint, _) = create_endpoint(
        &server,
        json!({"url": receiver.base, "retry_schedule": ["300ms", "600ms"]}),
    )
    .await;
    let (_, message) = post(
        &server,
        "/api/v1/messages",
        &json!({"event_type": "a.b", "payload": {}, "id": "m1"}),
    )
    .await;
    assert_eq!(message["deliveries"][0]["endpoint_id"], endpoint.as_str());

    let delivery = ended_delivery(&server, "m1").await;
    assert_eq!(delivery["status"], "failed");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "one attempt and the two of the schedule");
    let (_, execution) = server
        .get_json(&format!(
            "/api/v1/executions/{}",
            delivery["execution_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(execution["error"]["code"], "attempts_exhausted");
    let steps = execution["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    let at = |index: usize| {
        switchboard_core::Timestamp::parse_rfc3339(steps[index]["started_at"].as_str().unwrap())
            .unwrap()
    };
    // ±20 % jitter around 300 ms and 600 ms.
    assert!(at(1).duration_since(at(0)) >= Duration::from_millis(240));
    assert!(at(2).duration_since(at(1)) >= Duration::from_millis(480));

    let (_, failed) = server
        .get_json(&format!(
            "/api/v1/endpoints/{endpoint}/attempts?status=failed"
        ))
        .await;
    let items = failed["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["attempt"], 3, "newest first");
    assert_eq!(items[0]["response_status"], 500);
    assert_eq!(items[0]["error_kind"], "http_status");
    let (_, succeeded) = server
        .get_json(&format!(
            "/api/v1/endpoints/{endpoint}/attempts?status=succeeded"
        ))
        .await;
    assert_eq!(succeeded["items"], json!([]));
    let (_, endpoint) = server
        .get_json(&format!("/api/v1/endpoints/{endpoint}"))
        .await;
    assert!(endpoint["failing_since"].is_string(), "{endpoint}");
    server.stop().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_at_once() {
    let server = server(|_| {}).await;
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 410;
    let (endpoint, _) = create_endpoint(&server, json!({"url": receiver.base})).await;
    post(
        &server,
        "/api/v1/messages",
        &json!({"event_type": "a.b", "payload": {}, "id": "gone-1"}),
    )
    .await;
    let delivery = ended_delivery(&server, "gone-1").await;
    assert_eq!(delivery["status"], "failed");
    assert_eq!(receiver.requests().len(), 1, "no retry after 410");
    let (_, state) = server
        .get_json(&format!("/api/v1/endpoints/{endpoint}"))
        .await;
    assert_eq!(state["disabled"], true);
    assert_eq!(state["disabled_reason"], "the endpoint answered 410 Gone");
    let (_, next) = post(
        &server,
        "/api/v1/messages",
        &json!({"event_type": "a.b", "payload": {}}),
    )
    .await;
    assert_eq!(
        next["deliveries"],
        json!([]),
        "a disabled endpoint gets no new message"
    );
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"switchboard_webhook_endpoints_disabled_total{reason="gone"} 1"#),
        "{metrics}"
    );
    // The bus announced it, and a flow took it up.
    let paged = wait_until("a flow started by endpoint.disabled", async || {
        let (_, page) = server
            .get_json("/api/v1/executions?flow=endpoint-down&status=succeeded")
            .await;
        page["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let (_, paged) = server
        .get_json(&format!("/api/v1/executions/{paged}"))
        .await;
    assert_eq!(
        paged["output"],
        json!({"endpoint": endpoint, "reason": "the endpoint answered 410 Gone"})
    );
    // The `endpoint_disabled` alert fires, naming it.
    let noticed = wait_until("the endpoint_disabled alert", async || {
        let (_, page) = server
            .get_json("/api/v1/executions?flow=on-alert&status=succeeded")
            .await;
        page["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let (_, noticed) = server
        .get_json(&format!("/api/v1/executions/{noticed}"))
        .await;
    assert_eq!(noticed["output"]["status"], "firing");
    let summary = noticed["output"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("1 outbound endpoint(s) disabled: ") && summary.contains(&endpoint),
        "{summary}"
    );

    // Enabling it again clears the reason.
    let mut settings = state.clone();
    for field in [
        "id",
        "disabled_reason",
        "failing_since",
        "created_at",
        "updated_at",
    ] {
        settings.as_object_mut().unwrap().remove(field);
    }
    settings["disabled"] = json!(false);
    let response = server
        .client
        .put(server.url(&format!("/api/v1/endpoints/{endpoint}")))
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let enabled: Value = response.json().await.unwrap();
    assert_eq!(enabled["disabled"], false);
    assert_eq!(enabled["disabled_reason"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn an_endpoint_failing_longer_than_the_limit_is_disabled() {
    let server = server(|config| config.outbound.disable_after = Duration::from_millis(500)).await;
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 503;
    let (endpoint, _) = create_endpoint(
        &server,
        json!({"url": receiver.base, "retry_schedule": ["300ms", "300ms", "300ms", "300ms"]}),
    )
    .await;
    post(
        &server,
        "/api/v1/messages",
        &json!({"event_type": "a.b", "payload": {}, "id": "f-1"}),
    )
    .await;
    let delivery = ended_delivery(&server, "f-1").await;
    assert_eq!(delivery["status"], "failed");
    let attempts = receiver.requests().len();
    assert!(
        (3..5).contains(&attempts),
        "disabled before the schedule ran out: {attempts}"
    );
    let (_, state) = server
        .get_json(&format!("/api/v1/endpoints/{endpoint}"))
        .await;
    assert_eq!(state["disabled"], true);
    assert!(
        state["disabled_reason"]
            .as_str()
            .unwrap()
            .starts_with("every attempt failed since"),
        "{state}"
    );
    let (_, execution) = server
        .get_json(&format!(
            "/api/v1/executions/{}",
            delivery["execution_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(execution["error"]["code"], "endpoint_disabled");
    server.stop().await;
}

#[tokio::test]
async fn fifo_endpoints_receive_in_order_while_the_head_fails() {
    let server = server(|_| {}).await;
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 500;
    create_endpoint(
        &server,
        json!({"url": receiver.base, "ordering": "fifo", "retry_schedule": ["400ms", "400ms"]}),
    )
    .await;
    for index in 1..=3 {
        let message =
            json!({"event_type": "a.b", "payload": {"n": index}, "id": format!("fifo-{index}")});
        post(&server, "/api/v1/messages", &message).await;
    }
    wait_for_requests(&receiver, 1).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        receiver.requests().len(),
        1,
        "the next waits for the failing head"
    );
    *receiver.status.lock().unwrap() = 200;
    let requests = wait_for_requests(&receiver, 4).await;
    let order: Vec<i64> = requests
        .iter()
        .map(|request| request.body["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [1, 1, 2, 3]);
    server.stop().await;
}

#[tokio::test]
async fn an_endpoint_rate_limit_spaces_its_deliveries() {
    let server = server(|_| {}).await;
    let receiver = Receiver::start().await;
    create_endpoint(&server, json!({"url": receiver.base, "rate_limit": 2})).await;
    for index in 0..6 {
        post(
            &server,
            "/api/v1/messages",
            &json!({"event_type": "a.b", "payload": {"n": index}}),
        )
        .await;
    }
    let started = Instant::now();
    wait_for_requests(&receiver, 6).await;
    // Two per second: the fifth and sixth cannot start before two seconds have passed.
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "six deliveries at 2/s took {:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn internal_addresses_and_redirects_are_refused() {
    // No network allowed: loopback is refused by name and by address.
    let guarded = TestServer::start_configured(PROJECT, Secrets::default(), |config| {
        config.outbound.retry_schedule = Vec::new();
    })
    .await;
    let receiver = Receiver::start().await;
    let port = receiver.base.rsplit(':').next().unwrap().to_owned();
    for (id, url) in [
        ("by-name", format!("http://localhost:{port}/hook")),
        ("by-address", format!("http://127.0.0.1:{port}/hook")),
    ] {
        create_endpoint(&guarded, json!({"url": url, "event_types": [id]})).await;
        post(
            &guarded,
            "/api/v1/messages",
            &json!({"event_type": id, "payload": {}, "id": id}),
        )
        .await;
        let delivery = ended_delivery(&guarded, id).await;
        assert_eq!(delivery["status"], "failed");
        let (_, attempts) = guarded
            .get_json(&format!("/api/v1/messages/{id}/attempts"))
            .await;
        assert_eq!(
            attempts["items"][0]["error_kind"], "forbidden_address",
            "{attempts}"
        );
        assert!(
            attempts["items"][0]["error"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1"),
            "{attempts}"
        );
    }
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
    guarded.stop().await;

    // Loopback allowed; a redirect to the metadata address is not followed.
    let server = server(|config| config.outbound.retry_schedule = Vec::new()).await;
    *receiver.status.lock().unwrap() = 302;
    receiver.headers.lock().unwrap().push((
        "location",
        String::from("http://169.254.169.254/latest/meta-data"),
    ));
    create_endpoint(&server, json!({"url": receiver.base})).await;
    post(
        &server,
        "/api/v1/messages",
        &json!({"event_type": "a.b", "payload": {}, "id": "r-1"}),
    )
    .await;
    let delivery = ended_delivery(&server, "r-1").await;
    assert_eq!(delivery["status"], "failed");
    let (_, attempts) = server.get_json("/api/v1/messages/r-1/attempts").await;
    assert_eq!(attempts["items"][0]["error_kind"], "redirect");
    assert_eq!(attempts["items"][0]["response_status"], 302);
    assert_eq!(receiver.requests().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn resend_and_recover_deliver_failed_messages_again() {
    let server = server(|config| config.outbound.retry_schedule = Vec::new()).await;
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 500;
    let since = switchboard_core::Timestamp::now().to_rfc3339();
    let (endpoint, _) = create_endpoint(&server, json!({"url": receiver.base})).await;
    for id in ["rc-1", "rc-2", "rc-3"] {
        post(
            &server,
            "/api/v1/messages",
            &json!({"event_type": "a.b", "payload": {"id": id}, "id": id}),
        )
        .await;
        assert_eq!(ended_delivery(&server, id).await["status"], "failed");
    }
    *receiver.status.lock().unwrap() = 200;

    let (status, resent) = post(
        &server,
        &format!("/api/v1/messages/rc-1/resend/{endpoint}"),
        &json!(null),
    )
    .await;
    assert_eq!(status, 202, "{resent}");
    wait_for_requests(&receiver, 4).await;

    let (status, job) = post(
        &server,
        &format!("/api/v1/endpoints/{endpoint}/recover"),
        &json!({"since": since}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let done = wait_until("the recover job", async || {
        let (_, job) = server.get_json(&format!("/api/v1/jobs/{job_id}")).await;
        (job["state"] == "done").then_some(job)
    })
    .await;
    assert_eq!(done["action"], "resend");
    assert_eq!(
        done["applied"], 2,
        "rc-1 was already resent and succeeded: {done}"
    );
    let requests = wait_for_requests(&receiver, 6).await;
    let ids: Vec<&str> = requests[3..]
        .iter()
        .map(|request| request.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert_eq!(ids[0], "rc-1");
    let mut recovered = ids[1..].to_vec();
    recovered.sort_unstable();
    assert_eq!(recovered, ["rc-2", "rc-3"]);
    server.stop().await;
}

#[tokio::test]
async fn bad_endpoint_and_message_input_is_refused_with_the_field() {
    let server = server(|_| {}).await;
    for (body, path) in [
        (json!({"url": "not a url"}), "body.url"),
        (json!({"url": "ftp://x.test/"}), "body.url"),
        (
            json!({"url": "https://x.test", "event_types": ["ok", "bad type"]}),
            "body.event_types[1]",
        ),
        (
            json!({"url": "https://x.test", "filter": ".a |"}),
            "body.filter",
        ),
        (
            json!({"url": "https://x.test", "headers": {"webhook-signature": "x"}}),
            "body.headers.webhook-signature",
        ),
        (
            json!({"url": "https://x.test", "retry_schedule": ["1s", "later"]}),
            "body.retry_schedule[1]",
        ),
        (
            json!({"url": "https://x.test", "rate_limit": 0}),
            "body.rate_limit",
        ),
        (
            json!({"url": "https://x.test", "ordering": "lifo"}),
            "body.ordering",
        ),
        (
            json!({"url": "https://x.test", "colour": "blue"}),
            "body.colour",
        ),
    ] {
        let (status, error) = post(&server, "/api/v1/endpoints", &body).await;
        assert_eq!(status, 422, "{body} → {error}");
        assert_eq!(error["error"]["path"], path, "{body} → {error}");
    }
    let (status, error) = post(
        &server,
        "/api/v1/messages",
        &json!({"event_type": "a b", "payload": {}}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["path"], "body.event_type");
    let (status, error) = post(&server, "/api/v1/messages", &json!({"payload": {}})).await;
    assert_eq!(status, 422, "{error}");
    let (status, _) = server.get_json("/api/v1/endpoints/ep_nope").await;
    assert_eq!(status, 404);
    let (status, _) = server.get_json("/api/v1/messages/nothing-here").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_delivery_loses_nothing_and_repeats_no_success() {
    let receiver = Receiver::start().await;
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("shop.yaml"), PROJECT).unwrap();
    let data = tempfile::tempdir().unwrap();
    let allow = ["--webhook-allow-network", "127.0.0.0/8"];
    let client = reqwest::Client::new();
    let server = crate::support::ServeProcess::start(folder.path(), data.path(), &allow);
    let base = server.base.clone();
    let created: Value = client
        .post(format!("{base}/api/v1/endpoints"))
        .json(&json!({"url": receiver.base}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(created["id"].is_string(), "{created}");
    let post_message = async |base: &str, id: &str| {
        let response = client
            .post(format!("{base}/api/v1/messages"))
            .json(&json!({"event_type": "order.created", "payload": {"id": id}, "id": id}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    };
    post_message(&base, "before").await;
    wait_until("the first delivery to succeed", async || {
        (delivery_status(&client, &base, "before").await.as_deref() == Some("succeeded"))
            .then_some(())
    })
    .await;

    *receiver.delay.lock().unwrap() = Duration::from_secs(3);
    post_message(&base, "during").await;
    wait_for_requests(&receiver, 2).await;
    server.kill();
    *receiver.delay.lock().unwrap() = Duration::ZERO;

    let server = crate::support::ServeProcess::start(folder.path(), data.path(), &allow);
    let base = server.base.clone();
    wait_until("the interrupted delivery to succeed", async || {
        (delivery_status(&client, &base, "during").await.as_deref() == Some("succeeded"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = |id: &str| {
        receiver
            .requests()
            .iter()
            .filter(|request| request.headers["webhook-id"] == id)
            .count()
    };
    assert_eq!(
        sent("before"),
        1,
        "a delivery that succeeded is never sent again"
    );
    assert_eq!(
        sent("during"),
        2,
        "the delivery cut off by the crash is sent again after the restart"
    );
    assert_eq!(server.terminate(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_endpoints_hold_no_worker_of_the_flows() {
    let slow = Receiver::start().await;
    *slow.delay.lock().unwrap() = Duration::from_secs(5);
    let server = server(|config| {
        config.workers = 1;
        config.outbound.workers = 1;
    })
    .await;
    create_endpoint(
        &server,
        json!({"url": slow.base, "event_types": ["order.created"]}),
    )
    .await;
    for n in 0..3 {
        let message = json!({"event_type": "order.created", "payload": {"n": n}});
        let (status, _) = post(&server, "/api/v1/messages", &message).await;
        assert_eq!(status, 202);
    }
    wait_until("a delivery in flight", async || {
        (!slow.requests().is_empty()).then_some(())
    })
    .await;
    // The delivery pool is busy for seconds; the flows' one worker is not theirs.
    let response = server
        .client
        .post(server.url("/invoke/shop/ping"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the flow waited for the deliveries");
    assert_eq!(response.text().await.unwrap(), "pong");
}
