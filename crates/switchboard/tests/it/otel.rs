//! OpenTelemetry export (built with `--features otel`): the execution and step spans
//! reach an OTLP/HTTP collector in the trace of the webhook that started them, and the
//! step's request names the step's span as its parent.

use serde_json::json;

use crate::support::{Receiver, ServeProcess, binary, execution_id, wait_for_execution};

/// `hex` as bytes.
fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&hex[index..index + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

// Multi-threaded: the collector must answer while this thread waits for the server to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_in_the_webhooks_trace() {
    let collector = Receiver::start().await;
    let partner = Receiver::start().await;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("relay.yaml");
    let flow = format!(
        r#"
name: relay
flows:
  forward:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: send
        http: {{ method: POST, url: "{}/in", json: . }}
"#,
        partner.base
    );
    std::fs::write(&file, flow).unwrap();
    let mut command = binary();
    command
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::null());
    let server = ServeProcess::start_command(
        command,
        &file,
        &folder.path().join("data"),
        &["--otel-endpoint", &collector.base],
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/hooks/relay/forward", server.base))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    let id = execution_id(response).await;
    assert_eq!(
        wait_for_execution(&client, &server.base, &id).await["status"],
        "succeeded"
    );
    assert_eq!(server.terminate(), 0, "the last spans are sent at shutdown");

    let sent = partner.requests()[0].headers["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let parts: Vec<_> = sent.split('-').collect();
    assert_eq!(
        parts[1], trace_id,
        "the request continues the webhook's trace"
    );
    let exported: Vec<u8> = collector
        .requests()
        .iter()
        .filter(|request| request.path == "/v1/traces")
        .flat_map(|request| request.raw.clone())
        .collect();
    assert!(!exported.is_empty(), "nothing reached the collector");
    assert!(
        contains(&exported, &bytes(trace_id)),
        "the spans are not in the webhook's trace"
    );
    assert!(
        contains(&exported, &bytes(parts[2])),
        "the span named as the request's parent was not exported"
    );
    assert!(
        contains(&exported, &bytes("00f067aa0ba902b7")),
        "the caller's span is not the parent"
    );
    assert!(contains(&exported, b"execution") && contains(&exported, b"step"));
}
