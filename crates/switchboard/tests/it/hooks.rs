//! Inbound hooks: durable ingest, step records, and every kind of bad request.

use serde_json::{Value, json};
use switchboard_core::Secrets;

use crate::support::{Receiver, TestServer};

fn shop(receiver: &str) -> String {
    format!(
        r#"
name: shop-orders
config:
  erp_url: {{ default: "{receiver}" }}
flows:
  receive-order:
    trigger: {{ webhook: {{ methods: [POST, PUT] }} }}
    steps:
      - id: order
        transform: '{{id: .id, total: ([.lines[] | .qty * .price] | add), via: $trigger.headers["x-shop"]}}'
      - id: forward
        http:
          method: POST
          url: "${{{{ $config.erp_url }}}}/orders"
          headers: {{ X-Source: switchboard }}
          query: {{ shop: '${{{{ $trigger.query.shop }}}}' }}
          json: '$steps.order'
          timeout: 5s
      - id: note
        log: "forwarded ${{{{ $steps.order.id }}}} -> ${{{{ $steps.forward.status }}}}"
  strict:
    trigger: {{ webhook: {{ accept: json }} }}
    steps:
      - id: echo
        transform: .
  anything:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: echo
        transform: .
  endless:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: spin
        transform: 'def f: f; f'
  missing:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: lookup
        http: {{ url: "{receiver}/missing", accept: [404] }}
      - id: fail
        http: {{ url: "{receiver}/boom" }}
"#
    )
}

#[tokio::test]
async fn a_webhook_runs_its_flow_and_records_every_step() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&shop(&receiver.base)).await;
    let order = json!({"id": "ord_1", "lines": [{"qty": 2, "price": 5}, {"qty": 1, "price": 3}]});
    let response = server
        .client
        .post(server.url("/hooks/shop-orders/receive-order?shop=eu"))
        .header("X-Shop", "web")
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["execution_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("exe_"));

    let execution = server.finished_execution(&id).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    assert_eq!(execution["input"], order);
    assert_eq!(execution["trigger"]["method"], "POST");
    assert_eq!(execution["trigger"]["query"]["shop"], "eu");
    let steps = execution["steps"].as_array().unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|step| step["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["order", "forward", "note"]
    );
    assert!(steps.iter().all(|step| step["status"] == "succeeded"
        && step["started_at"].is_string()
        && step["finished_at"].is_string()));
    assert_eq!(
        steps[0]["output"],
        json!({"id": "ord_1", "total": 13, "via": "web"})
    );
    assert_eq!(steps[1]["input"]["method"], "POST");
    assert_eq!(
        steps[1]["input"]["url"],
        format!("{}/orders?shop=eu", receiver.base)
    );
    assert_eq!(steps[1]["output"]["status"], 200);
    assert_eq!(steps[1]["output"]["body"], json!({"received": true}));
    assert_eq!(steps[2]["output"], "forwarded ord_1 -> 200");
    assert_eq!(execution["log"][0]["message"], "forwarded ord_1 -> 200");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/orders");
    assert_eq!(
        requests[0].body,
        json!({"id": "ord_1", "total": 13, "via": "web"})
    );
    assert_eq!(requests[0].headers["x-source"], "switchboard");
    assert_eq!(
        requests[0].headers["idempotency-key"],
        format!("{id}.forward").as_str()
    );
    assert_eq!(requests[0].headers["content-type"], "application/json");
}

/// Posts a raw body with a content type to the `anything` hook and returns what its
/// echo step saw.
async fn echoed(server: &TestServer, content_type: &str, body: &'static str) -> Value {
    let response = server
        .client
        .post(server.url("/hooks/shop-orders/anything"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.finished_execution(&id).await["steps"][0]["output"].clone()
}

#[tokio::test]
async fn bodies_are_parsed_by_content_type() {
    let server = TestServer::start(&shop("http://127.0.0.1:9")).await;
    let form = "application/x-www-form-urlencoded";
    assert_eq!(
        echoed(&server, form, "a=1&b=two&a=3").await,
        json!({"a": ["1", "3"], "b": "two"})
    );
    assert_eq!(echoed(&server, "text/plain", "hello").await, "hello");
    assert_eq!(
        echoed(&server, form, r#"{"id": 7}"#).await,
        json!({"id": 7}),
        "curl -d sends JSON labelled as a form"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors() {
    let server = TestServer::start(&shop("http://127.0.0.1:9")).await;
    let (status, body) = server
        .post_hook("/hooks/shop-orders/nope", &json!({}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = server
        .post_hook("/hooks/nope/receive-order", &json!({}))
        .await;
    assert_eq!(status, 404);

    let response = server
        .client
        .delete(server.url("/hooks/shop-orders/receive-order"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST, PUT");
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );

    let big = "x".repeat(64 * 1024 + 1);
    let response = server
        .client
        .post(server.url("/hooks/shop-orders/anything"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
    let status = chunked_post(&server.base, "/hooks/shop-orders/anything", &big).await;
    assert_eq!(
        status, 413,
        "a chunked body without a length is cut at the limit too"
    );

    let response = server
        .client
        .post(server.url("/hooks/shop-orders/strict"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "unsupported_media_type"
    );

    let response = server
        .client
        .post(server.url("/hooks/shop-orders/strict"))
        .header("content-type", "application/json")
        .body("{\"a\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert_eq!(body["error"]["path"], "body");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{body}"
    );

    let page = server.get_json("/api/v1/executions").await.1;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        0,
        "no rejected request was stored"
    );
}

/// POSTs `body` in 4 KiB chunks with no content length, over a raw connection; returns the status.
async fn chunked_post(base: &str, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(4096) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_jq_program_that_never_ends_fails_its_step() {
    let server = TestServer::start(&shop("http://127.0.0.1:9")).await;
    let execution = server
        .run_hook("/hooks/shop-orders/endless", &json!({}))
        .await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(execution["error"]["code"], "expression_timeout");
    assert_eq!(execution["error"]["step"], "spin");
    assert!(
        execution["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{execution:#}"
    );
}

#[tokio::test]
async fn non_2xx_answers_fail_the_step_unless_accepted() {
    let receiver = Receiver::start().await;
    *receiver.status.lock().unwrap() = 404;
    let server = TestServer::start(&shop(&receiver.base)).await;
    let (_, body) = server
        .post_hook("/hooks/shop-orders/missing", &json!({}))
        .await;
    let execution = server
        .finished_execution(body["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(
        execution["steps"][0]["status"], "succeeded",
        "404 is accepted by the first step"
    );
    assert_eq!(execution["steps"][1]["status"], "failed");
    assert_eq!(
        execution["steps"][1]["output"]["status"], 404,
        "the failing answer is kept"
    );
    assert_eq!(execution["error"]["code"], "http_status");
    assert_eq!(
        execution["error"]["message"],
        format!("GET {}/boom answered 404", receiver.base)
    );
}

#[tokio::test]
async fn secrets_are_redacted_from_records() {
    let receiver = Receiver::start().await;
    let yaml = format!(
        "name: s\nflows:\n  f:\n    trigger: {{ webhook: {{}} }}\n    steps:\n      - id: call\n        http: {{ url: '{}/x', headers: {{ Authorization: 'Bearer ${{{{ $secrets.TOKEN }}}}' }} }}\n      - id: say\n        log: 'token is ${{{{ $secrets.TOKEN }}}}'\n",
        receiver.base
    );
    let secrets = Secrets::from_pairs([("TOKEN".to_owned(), "tok-very-secret".to_owned())]);
    let server = TestServer::start_with(&yaml, secrets).await;
    let (_, body) = server.post_hook("/hooks/s/f", &json!({})).await;
    let id = body["execution_id"].as_str().unwrap();
    let execution = server.finished_execution(id).await;
    assert_eq!(execution["status"], "succeeded");
    assert_eq!(
        receiver.requests()[0].headers["authorization"],
        "Bearer tok-very-secret",
        "the receiver gets the real value"
    );
    let text = execution.to_string();
    assert!(!text.contains("tok-very-secret"), "{text}");
    assert_eq!(
        execution["steps"][0]["input"]["headers"]["Authorization"],
        "Bearer ***"
    );
    assert_eq!(execution["log"][0]["message"], "token is ***");
}

#[tokio::test]
async fn a_repeated_delivery_is_answered_with_the_first_execution() {
    let server = TestServer::start(
        r#"
name: events
flows:
  incoming:
    trigger:
      webhook:
        dedupe: '.id // $trigger.headers["x-request-id"]'
        dedupe_window: 400ms
    steps:
      - id: echo
        transform: .
  strict:
    trigger: { webhook: { dedupe: '.id | ascii_downcase' } }
    steps:
      - id: echo
        transform: .
"#,
    )
    .await;
    let hook = "/hooks/events/incoming";
    let (status, first) = server.post_hook(hook, &json!({"id": "evt_1"})).await;
    assert_eq!(status, 202);
    assert_eq!(first.get("duplicate"), None);
    let (status, again) = server
        .post_hook(hook, &json!({"id": "evt_1", "n": 2}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        again,
        json!({"execution_id": first["execution_id"], "duplicate": true})
    );
    let (status, other) = server.post_hook(hook, &json!({"id": "evt_2"})).await;
    assert_eq!(status, 202);
    assert_ne!(other["execution_id"], first["execution_id"]);

    let by_header = || {
        server
            .client
            .post(server.url(hook))
            .header("x-request-id", "req-9")
            .json(&json!({}))
            .send()
    };
    assert_eq!(by_header().await.unwrap().status(), 202);
    assert_eq!(
        by_header().await.unwrap().status(),
        200,
        "the header is the key"
    );
    for _ in 0..2 {
        let (status, _) = server.post_hook(hook, &json!({"no": "key"})).await;
        assert_eq!(status, 202, "a request without a key is never a duplicate");
    }

    let (status, error) = server
        .post_hook("/hooks/events/strict", &json!({"id": 42}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["code"], "dedupe_key_failed");
    assert_eq!(error["error"]["path"], "body");

    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    let (status, later) = server.post_hook(hook, &json!({"id": "evt_1"})).await;
    assert_eq!(status, 202, "the window is over");
    assert_ne!(later["execution_id"], first["execution_id"]);

    let (_, listed) = server.get_json("/api/v1/executions?flow=incoming").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 6);
    let metrics = server.get_text("/metrics").await;
    assert!(metrics.contains(
        r#"switchboard_webhooks_received_total{integration="events",flow="incoming",outcome="duplicate"} 2"#
    ), "{metrics}");
    server.stop().await;
}
