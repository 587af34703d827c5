//! Sub-flows and synchronous calls, against the real server over HTTP: `call` steps
//! (waiting and not, linked both ways), `invoke` answered by `respond` or by the
//! output, the `202` past the wait with polling and a signed callback, webhooks with
//! `mode: sync`, and a dispatching hook.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::Secrets;

use crate::support::{Receiver, TestServer, reference_accepts};

/// The callback secret of the tests (Standard Webhooks form).
const CALLBACK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn project(receiver: &str) -> String {
    format!(
        r#"
name: shop
flows:
  order:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: priced
        call: {{ flow: price, input: '{{lines: .lines}}' }}
      - id: notify
        call: {{ flow: notify, input: '{{total: $steps.priced.total}}', wait: false }}
      - id: done
        transform: '{{total: $steps.priced.total, notified: $steps.notify.execution_id}}'
  price:
    trigger: {{ call: {{}} }}
    steps:
      - id: total
        transform: '{{total: ([.lines[] | .qty * .price] | add)}}'
  notify:
    trigger: {{ call: {{}} }}
    steps:
      - id: post
        http: {{ method: POST, url: "{receiver}/notify", json: . }}
  refund:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: check
        call: {{ flow: refuse }}
  refuse:
    trigger: {{ call: {{}} }}
    steps:
      - id: no
        fail: {{ message: '"refunds are closed"', code: '"closed"' }}
  quote:
    trigger: {{ invoke: {{ wait: 5s }} }}
    steps:
      - id: answer
        respond:
          status: 201
          headers: {{ x-quote: '${{{{ .sku }}}}' }}
          body: '{{sku: .sku, price: 42}}'
      - id: after
        transform: '"went on"'
  echo:
    trigger: {{ invoke: {{}} }}
    steps:
      - id: out
        transform: '{{echo: .}}'
  slow:
    trigger:
      invoke:
        wait: 300ms
        callback: {{ secret: '${{{{ $secrets.CALLBACK_SECRET }}}}' }}
    steps:
      - id: nap
        sleep: 1s
      - id: out
        transform: '{{done: .n}}'
  broken:
    trigger: {{ invoke: {{}} }}
    steps:
      - id: no
        fail: {{ message: '"no"' }}
  lookup:
    trigger: {{ webhook: {{ mode: sync, wait: 5s }} }}
    steps:
      - id: text
        respond: {{ body: '"hello \(.name)"' }}
  router:
    trigger: {{ webhook: {{ dispatch: '"on-" + .type', mode: sync }} }}
  on-paid:
    trigger: {{ call: {{}} }}
    steps:
      - id: paid
        respond: {{ status: 200, body: '{{handled: "paid", id: .id, via: $trigger.kind}}' }}
"#
    )
}

async fn start(receiver: &Receiver) -> TestServer {
    let secrets = Secrets::from_pairs([(
        String::from("CALLBACK_SECRET"),
        String::from(CALLBACK_SECRET),
    )]);
    TestServer::start_configured(&project(&receiver.base), secrets, |config| {
        config.outbound.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
}

async fn invoke(server: &TestServer, path: &str, body: &Value) -> reqwest::Response {
    server
        .client
        .post(server.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_call_runs_a_child_linked_both_ways() {
    let receiver = Receiver::start().await;
    let server = start(&receiver).await;
    let order = json!({"lines": [{"qty": 2, "price": 10}, {"qty": 1, "price": 5}]});
    let parent = server.run_hook("/hooks/shop/order", &order).await;
    assert_eq!(parent["status"], "succeeded", "{parent:#}");
    assert_eq!(parent["output"]["total"], 25);
    let steps = parent["steps"].as_array().unwrap();
    let priced: Vec<&Value> = steps.iter().filter(|step| step["id"] == "priced").collect();
    assert_eq!(
        priced.len(),
        2,
        "a waiting record, then the child's output: {steps:#?}"
    );
    assert_eq!(priced[0]["status"], "waiting");
    assert_eq!(priced[1]["status"], "succeeded");
    assert_eq!(priced[1]["output"], json!({"total": 25}));
    let child_id = priced[0]["output"]["execution_id"].as_str().unwrap();
    let child = server.finished_execution(child_id).await;
    assert_eq!(child["parent_id"], parent["id"]);
    assert_eq!(child["trigger"]["kind"], "call");
    assert_eq!(child["trigger"]["parent"]["step"], "priced");
    // The fire-and-forget child runs on its own and reaches the receiver.
    let notified = parent["output"]["notified"].as_str().unwrap();
    let notify = server.finished_execution(notified).await;
    assert_eq!(notify["status"], "succeeded", "{notify:#}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body, json!({"total": 25}));
    let parent_id = parent["id"].as_str().unwrap();
    let (status, children) = server
        .get_json(&format!("/api/v1/executions?parent_id={parent_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        children["items"].as_array().unwrap().len(),
        2,
        "{children:#}"
    );

    let refund = server.run_hook("/hooks/shop/refund", &json!({})).await;
    assert_eq!(refund["status"], "failed");
    assert_eq!(refund["error"]["code"], "call_failed");
    let message = refund["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("refunds are closed") && message.contains("shop/refuse"),
        "{message}"
    );
}

#[tokio::test]
async fn invoke_answers_with_respond_or_the_output() {
    let receiver = Receiver::start().await;
    let server = start(&receiver).await;
    let response = invoke(&server, "/invoke/shop/quote", &json!({"sku": "a-1"})).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-quote"], "a-1");
    let id = response.headers()["switchboard-execution-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"sku": "a-1", "price": 42})
    );
    // The flow went on after it answered.
    let execution = server.finished_execution(&id).await;
    assert_eq!(execution["output"], "went on");
    assert_eq!(execution["response"]["status"], 201);

    let response = invoke(&server, "/invoke/shop/echo", &json!({"a": 1})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"echo": {"a": 1}})
    );

    let response = invoke(&server, "/invoke/shop/broken", &json!({})).await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "execution_failed");
    assert!(body["execution_id"].as_str().unwrap().starts_with("exe_"));

    let response = server
        .client
        .post(server.url("/hooks/shop/lookup"))
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello Ada");

    let response = invoke(&server, "/invoke/shop/order", &json!({})).await;
    assert_eq!(response.status(), 404, "a webhook flow is not invoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_invoke_answers_202_then_polls_and_calls_back() {
    let receiver = Receiver::start().await;
    let server = start(&receiver).await;
    let callback = format!("{}/callback", receiver.base);
    let response = server
        .client
        .post(server.url("/invoke/shop/slow"))
        .header("Switchboard-Callback", &callback)
        .json(&json!({"n": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let pending: Value = response.json().await.unwrap();
    assert_eq!(pending["callback"], true);
    assert_eq!(pending["location"], location);
    let id = pending["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/invoke/shop/slow/{id}"));
    let (status, _) = server.get_json(&location).await;
    assert_eq!(status, 202, "not answered while it sleeps");

    for _ in 0..150 {
        if !receiver.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.requests().len(), 1, "one callback, and only one");
    let request = &receiver.requests()[0];
    assert_eq!(request.path, "/callback");
    assert_eq!(request.body["execution_id"], id.as_str());
    assert_eq!(request.body["status"], "succeeded");
    assert_eq!(request.body["response"]["status"], 200);
    assert_eq!(request.body["response"]["body"], json!({"done": 7}));
    assert_eq!(request.headers["webhook-id"], id.as_str());
    if let Some(valid) = reference_accepts(CALLBACK_SECRET, request) {
        assert!(
            valid,
            "the reference library refused the callback's signature"
        );
    }
    let (status, body) = server.get_json(&location).await;
    assert_eq!((status, body), (200, json!({"done": 7})));

    // A callback needs a flow that signs, and an address outbound calls may reach.
    let refused = server
        .client
        .post(server.url("/invoke/shop/echo?callback_url=http://127.0.0.1:9/x"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_callback");
    assert_eq!(body["error"]["path"], "callback_url");
    let refused = server
        .client
        .post(server.url("/invoke/shop/slow?callback_url=ftp://example.com/x"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn a_dispatching_hook_routes_each_request_to_a_sibling() {
    let receiver = Receiver::start().await;
    let server = start(&receiver).await;
    let response = invoke(
        &server,
        "/hooks/shop/router",
        &json!({"type": "paid", "id": 3}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"handled": "paid", "id": 3, "via": "webhook"})
    );
    let response = invoke(&server, "/hooks/shop/router", &json!({"type": "lost"})).await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    let id = body["execution_id"].as_str().unwrap();
    let execution = server.finished_execution(id).await;
    assert_eq!(execution["error"]["code"], "unknown_flow");
    assert!(
        execution["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no flow `on-lost`"),
        "{execution:#}"
    );
}
