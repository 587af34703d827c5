//! The built-in event bus: publishing from the API and from flows, fan-out to
//! subscribing flows each at its own pace, filters, de-duplication by id, topics and
//! subscribers in the API, rewinds, and the outbound webhook endpoints as one more
//! subscriber.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_core::Secrets;

use crate::support::{Receiver, TestServer};

fn project(receiver: &str) -> String {
    format!(
        r#"
name: shop
flows:
  checkout:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: announce
        publish: {{ topic: order.created, data: '.orders[]', key: .customer, id: '"order-\(.id)"' }}
  stock:
    trigger: {{ event: {{ topic: order.created }} }}
    steps:
      - {{ id: reserve, transform: '{{order: .id, key: $trigger.key}}' }}
  billing:
    trigger: {{ event: {{ topic: "order.*", filter: .total > 10 }} }}
    retry: {{ attempts: 1 }}
    steps:
      - id: invoice
        http: {{ method: POST, url: "{receiver}/invoices", json: . }}
"#
    )
}

async fn executions(server: &TestServer, flow: &str, status: &str) -> Vec<Value> {
    let (_, page) = server
        .get_json(&format!(
            "/api/v1/executions?flow={flow}&status={status}&limit=500"
        ))
        .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn wait_for(server: &TestServer, flow: &str, status: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = executions(server, flow, status).await;
        if found.len() >= count {
            assert_eq!(found.len(), count, "{flow} {status}: {found:#?}");
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{flow}: {} of {count} {status}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn events_fan_out_to_each_subscriber_at_its_own_pace() {
    let receiver = Receiver::start().await;
    // The billing system is down: every invoice fails.
    *receiver.status.lock().unwrap() = 500;
    let server =
        TestServer::start_configured(&project(&receiver.base), Secrets::default(), |config| {
            config.outbound.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .await;

    // From the API: a repeated id is published once.
    let event = json!({"topic": "order.created", "id": "order-1", "key": "c-1", "data": {"id": 1, "total": 50}});
    let (status, first) = server.post_hook("/api/v1/events", &event).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = server.post_hook("/api/v1/events", &event).await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["sequence"], first["sequence"]);
    // From a flow: one event per output of `data`.
    let orders = json!({"orders": [{"id": 2, "total": 5, "customer": "c-2"}, {"id": 3, "total": 70, "customer": "c-2"}]});
    let execution = server.run_hook("/hooks/shop/checkout", &orders).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    assert_eq!(
        execution["steps"][0]["output"]["ids"],
        json!(["order-2", "order-3"])
    );

    // Stock takes all three; billing fails on the two over 10, without holding stock back.
    let stock = wait_for(&server, "stock", "succeeded", 3).await;
    wait_for(&server, "billing", "failed", 2).await;
    let invoiced: Vec<i64> = receiver
        .requests()
        .iter()
        .map(|request| request.body["id"].as_i64().unwrap())
        .collect();
    assert_eq!(invoiced.len(), 2);
    assert!(
        invoiced.contains(&1) && invoiced.contains(&3),
        "{invoiced:?}"
    );
    let (_, detail) = server
        .get_json(&format!(
            "/api/v1/executions/{}",
            stock[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["trigger"]["kind"], "event");
    assert_eq!(detail["trigger"]["topic"], "order.created");
    assert_eq!(detail["steps"][0]["output"]["key"], "c-2", "{detail:#}");

    // The API shows the topic, its subscribers caught up, and its events as CloudEvents.
    let (status, topics) = server.get_json("/api/v1/topics").await;
    assert_eq!(status, 200);
    let topic = &topics["items"][0];
    assert_eq!(topic["topic"], "order.created");
    assert_eq!(topic["events"], 3);
    let mut subscribers: Vec<&str> = topic["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscriber"].as_str().unwrap())
        .collect();
    subscribers.sort();
    assert_eq!(subscribers, ["_webhooks", "shop/billing", "shop/stock"]);
    assert!(
        topic["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["lag"] == 0),
        "{topics:#}"
    );
    let (_, events) = server
        .get_json("/api/v1/topics/order.created/events?limit=2")
        .await;
    assert_eq!(events["items"][0]["id"], "order-3");
    assert_eq!(events["items"][0]["specversion"], "1.0");
    assert_eq!(events["items"][0]["type"], "order.created");
    assert_eq!(events["items"][0]["partitionkey"], "c-2");
    assert_eq!(
        events["items"][0]["source"],
        "/integrations/shop/flows/checkout"
    );
    let cursor = events["next_cursor"].as_str().unwrap();
    let (_, rest) = server
        .get_json(&format!(
            "/api/v1/topics/order.created/events?cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["id"], "order-1");

    // Billing is back: rewinding it replays the events from the start.
    *receiver.status.lock().unwrap() = 200;
    let (status, rewound) = server
        .post_hook(
            "/api/v1/subscriptions/shop/billing/rewind",
            &json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200, "{rewound}");
    assert_eq!(rewound["cursor"], "0");
    wait_for(&server, "billing", "succeeded", 2).await;
    assert_eq!(
        executions(&server, "stock", "succeeded").await.len(),
        3,
        "stock was not rewound"
    );

    // Bad input names the field; an unknown subscriber is 404.
    let (status, error) = server
        .post_hook("/api/v1/events", &json!({"topic": "no spaces"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["path"], "body.topic");
    let (status, error) = server
        .post_hook(
            "/api/v1/subscriptions/shop/checkout/rewind",
            &json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 404, "{error}");
    let (status, error) = server
        .post_hook(
            "/api/v1/subscriptions/shop/billing/rewind",
            &json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["path"], "body.since");
    server.stop().await;
}

const QUIET: &str = r#"
name: quiet
flows:
  ping:
    trigger: { webhook: {} }
    steps:
      - { id: out, publish: { topic: invoice.paid, data: '{invoice: .n}' } }
"#;

/// Bus events whose topic matches an endpoint's event types are delivered to it as
/// messages with the event's id; an endpoint that gives up announces it on the bus.
#[tokio::test]
async fn bus_events_reach_outbound_endpoints() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_configured(QUIET, Secrets::default(), |config| {
        config.outbound.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
        config.outbound.retry_schedule = vec![Duration::from_millis(50)];
    })
    .await;
    let (status, endpoint) = server
        .post_hook(
            "/api/v1/endpoints",
            &json!({"url": format!("{}/paid", receiver.base), "event_types": ["invoice.*"]}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let (status, watcher) = server
        .post_hook("/api/v1/endpoints", &json!({"url": format!("{}/ops", receiver.base), "event_types": ["message.attempt.exhausted"]}))
        .await;
    assert_eq!(status, 201, "{watcher}");
    let execution = server.run_hook("/hooks/quiet/ping", &json!({"n": 7})).await;
    assert_eq!(execution["status"], "succeeded");
    let event_id = execution["steps"][0]["output"]["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.requests().is_empty() {
        assert!(Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = &receiver.requests()[0];
    assert_eq!(delivered.path, "/paid");
    assert_eq!(delivered.headers["webhook-id"], event_id.as_str());
    assert_eq!(delivered.body["type"], "invoice.paid");
    assert_eq!(delivered.body["data"], json!({"invoice": 7}));

    // The paid endpoint now fails for good: its exhausted delivery is announced to the
    // watcher, and not to the endpoint itself.
    *receiver.status.lock().unwrap() = 500;
    let execution = server.run_hook("/hooks/quiet/ping", &json!({"n": 8})).await;
    assert_eq!(execution["status"], "succeeded");
    let deadline = Instant::now() + Duration::from_secs(20);
    let announced = loop {
        let ops: Vec<_> = receiver
            .requests()
            .into_iter()
            .filter(|request| request.path == "/ops")
            .collect();
        if let Some(first) = ops.first() {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "no announcement");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(announced.body["type"], "message.attempt.exhausted");
    assert_eq!(announced.body["data"]["endpoint_id"], endpoint["id"]);
    assert_eq!(announced.body["data"]["event_type"], "invoice.paid");
    assert_eq!(announced.body["data"]["attempts"], 2);
    server.stop().await;
}
