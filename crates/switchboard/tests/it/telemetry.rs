//! Observability: each metric moves when its event happens, a live scrape passes
//! `promtool check metrics`, a trace crosses our hop, and no secret escapes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Receiver, ServeProcess, TestServer, binary, require_tool};

fn project(receiver: &str) -> String {
    format!(
        r#"
name: relay
flows:
  forward:
    trigger: {{ webhook: {{ accept: json }} }}
    steps:
      - id: shape
        transform: '{{id: .id}}'
      - id: send
        http: {{ method: POST, url: "{receiver}/in", json: '$steps.shape' }}
  unreachable:
    trigger: {{ webhook: {{}} }}
    retry: {{ attempts: 3, backoff: fixed, initial: 10ms, jitter: false }}
    steps:
      - id: send
        http: {{ url: "http://127.0.0.1:9/nothing-listens", timeout: 2s }}
"#
    )
}

/// The value of the sample `name{labels…}` in a scrape: every given label must match.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = series.split_once('{').unwrap_or((series, "}"));
        let matches = series_name == name
            && labels
                .iter()
                .all(|(label, wanted)| rest.contains(&format!("{label}=\"{wanted}\"")));
        matches.then(|| value.parse().unwrap())
    })
}

async fn scrape(server: &TestServer) -> String {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_move_with_the_events_they_report() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&project(&receiver.base)).await;
    let before = scrape(&server).await;
    let relay = [("integration", "relay"), ("flow", "forward")];
    assert_eq!(
        sample(&before, "switchboard_queue_depth_executions", &relay),
        Some(0.0)
    );
    assert_eq!(
        sample(&before, "switchboard_webhooks_received_total", &relay),
        None
    );

    let mut ids = Vec::new();
    for n in 0..2 {
        let (status, body) = server
            .post_hook("/hooks/relay/forward", &json!({"id": n}))
            .await;
        assert_eq!(status, 202);
        ids.push(body["execution_id"].as_str().unwrap().to_owned());
    }
    let (status, body) = server
        .post_hook("/hooks/relay/unreachable", &json!({}))
        .await;
    assert_eq!(status, 202);
    ids.push(body["execution_id"].as_str().unwrap().to_owned());
    let invalid = server
        .client
        .post(server.url("/hooks/relay/forward"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let unknown = server
        .post_hook("/hooks/relay/no-such-flow", &json!({}))
        .await;
    assert_eq!(unknown.0, 404);
    for id in &ids {
        server.finished_execution(id).await;
    }

    let after = scrape(&server).await;
    let count = |name: &str, extra: &[(&str, &str)]| {
        let labels: Vec<_> = relay.iter().chain(extra).copied().collect();
        sample(&after, name, &labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{after}"))
    };
    let webhooks = "switchboard_webhooks_received_total";
    assert_eq!(count(webhooks, &[("outcome", "accepted")]), 2.0);
    assert_eq!(
        count(
            webhooks,
            &[("outcome", "rejected"), ("reason", "invalid_json")]
        ),
        1.0
    );
    let unknown_flow = [("integration", ""), ("flow", ""), ("reason", "not_found")];
    assert_eq!(
        sample(&after, webhooks, &unknown_flow),
        Some(1.0),
        "{after}"
    );
    assert!(
        !after.contains("no-such-flow"),
        "a name from the URL became a label"
    );

    assert_eq!(
        count(
            "switchboard_executions_started_total",
            &[("trigger", "webhook")]
        ),
        2.0
    );
    assert_eq!(
        count(
            "switchboard_executions_finished_total",
            &[("outcome", "succeeded")]
        ),
        2.0
    );
    assert_eq!(
        count(
            "switchboard_execution_duration_seconds_count",
            &[("outcome", "succeeded")]
        ),
        2.0
    );
    assert_eq!(count("switchboard_executions_running", &[]), 0.0);
    let http_step = [("kind", "http"), ("outcome", "succeeded")];
    assert_eq!(
        count("switchboard_step_duration_seconds_count", &http_step),
        2.0
    );
    let transform = [("kind", "transform"), ("outcome", "succeeded")];
    assert_eq!(
        count("switchboard_step_duration_seconds_count", &transform),
        2.0
    );
    let sent = "switchboard_outbound_http_requests_total";
    assert_eq!(count(sent, &[("status_class", "2xx")]), 2.0);
    assert_eq!(
        count(
            "switchboard_outbound_http_request_duration_seconds_count",
            &[]
        ),
        2.0
    );

    let unreachable = [("integration", "relay"), ("flow", "unreachable")];
    let failed = [unreachable[0], unreachable[1], ("outcome", "failed")];
    assert_eq!(
        sample(&after, "switchboard_executions_finished_total", &failed),
        Some(1.0)
    );
    let refused = [unreachable[0], unreachable[1], ("status_class", "error")];
    assert_eq!(sample(&after, sent, &refused), Some(3.0), "three attempts");
    let retried = [unreachable[0], unreachable[1], ("kind", "http")];
    assert_eq!(
        sample(&after, "switchboard_retries_scheduled_total", &retried),
        Some(2.0)
    );
    assert_eq!(
        sample(&after, "switchboard_step_duration_seconds_count", &failed),
        Some(3.0)
    );

    let commits = sample(
        &after,
        "switchboard_store_commit_duration_seconds_count",
        &[],
    )
    .unwrap();
    let before_commits = sample(
        &before,
        "switchboard_store_commit_duration_seconds_count",
        &[],
    )
    .unwrap_or(0.0);
    assert!(
        commits >= before_commits + 3.0,
        "three executions were committed at least once each"
    );
    assert!(sample(&after, "switchboard_store_commit_batch_writes_count", &[]).unwrap() >= commits);
    assert_eq!(sample(&after, "switchboard_build_info", &[]), Some(1.0));
    server.stop().await;
}

#[tokio::test]
async fn running_and_queued_executions_show_while_they_wait() {
    let receiver = Receiver::start().await;
    *receiver.delay.lock().unwrap() = Duration::from_millis(1500);
    let server = TestServer::start(&project(&receiver.base)).await;
    let mut ids = Vec::new();
    // The test server has four workers: four run, two wait.
    for n in 0..6 {
        let (status, body) = server
            .post_hook("/hooks/relay/forward", &json!({"id": n}))
            .await;
        assert_eq!(status, 202);
        ids.push(body["execution_id"].as_str().unwrap().to_owned());
    }
    let relay = [("integration", "relay"), ("flow", "forward")];
    let mut seen = None;
    for _ in 0..100 {
        let text = scrape(&server).await;
        if sample(&text, "switchboard_executions_running", &relay) == Some(4.0) {
            seen = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = seen.expect("four executions never ran at once");
    assert_eq!(
        sample(&text, "switchboard_queue_depth_executions", &relay),
        Some(2.0)
    );
    assert!(sample(&text, "switchboard_queue_oldest_age_seconds", &relay).unwrap() >= 0.0);
    for id in &ids {
        server.finished_execution(id).await;
    }
    let text = scrape(&server).await;
    assert_eq!(
        sample(&text, "switchboard_executions_running", &relay),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "switchboard_queue_depth_executions", &relay),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "switchboard_queue_oldest_age_seconds", &relay),
        Some(0.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_live_scrape_passes_promtool() {
    let Some(promtool) = require_tool("promtool", "Debian package prometheus") else {
        return;
    };
    let receiver = Receiver::start().await;
    let server = TestServer::start(&project(&receiver.base)).await;
    let (_, body) = server
        .post_hook("/hooks/relay/forward", &json!({"id": 1}))
        .await;
    server
        .finished_execution(body["execution_id"].as_str().unwrap())
        .await;
    server.post_hook("/hooks/relay/nope", &json!({})).await;
    let text = scrape(&server).await;

    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics found problems:\n{}{}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    server.stop().await;
}

#[tokio::test]
async fn the_trace_of_a_webhook_continues_on_outbound_requests() {
    let receiver = Receiver::start().await;
    let server = TestServer::start(&project(&receiver.base)).await;
    let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = server
        .client
        .post(server.url("/hooks/relay/forward"))
        .header("traceparent", inbound)
        .json(&json!({"id": "traced"}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    server
        .finished_execution(body["execution_id"].as_str().unwrap())
        .await;
    let (_, body) = server
        .post_hook("/hooks/relay/forward", &json!({"id": "new"}))
        .await;
    let untraced = body["execution_id"].as_str().unwrap().to_owned();
    server.finished_execution(&untraced).await;

    let requests = receiver.requests();
    let traceparent = |index: usize| {
        requests[index].headers["traceparent"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let continued = traceparent(0);
    let parts: Vec<_> = continued.split('-').collect();
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
    assert_ne!(parts[2], "00f067aa0ba902b7", "our span is the new parent");
    assert_eq!(parts[3], "01");

    let started = traceparent(1);
    let ulid = ulid::Ulid::from_string(untraced.trim_start_matches("exe_")).unwrap();
    let expected: String = ulid
        .to_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(
        started.split('-').nth(1).unwrap(),
        expected,
        "a new trace is named after the execution"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_secret_never_reaches_a_log_a_record_an_answer_or_the_data_folder() {
    const SECRET: &str = "sk_live_4f9c2a7e1b8d3c6f";
    let receiver = Receiver::start().await;
    let folder = tempfile::tempdir().unwrap();
    let flow = format!(
        r#"
name: leaky
flows:
  echo:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: shown
        log: "token is ${{{{ $secrets.API_TOKEN }}}}"
      - id: echoed
        transform: '{{token: $secrets.API_TOKEN, nested: [{{again: ("Bearer " + $secrets.API_TOKEN)}}]}}'
      - id: sent
        http:
          method: POST
          url: "{receiver}/in?key=${{{{ $secrets.API_TOKEN }}}}"
          headers: {{ Authorization: "Bearer ${{{{ $secrets.API_TOKEN }}}}" }}
          json: '$steps.echoed'
      - id: refused
        http: {{ url: "http://127.0.0.1:9/?key=${{{{ $secrets.API_TOKEN }}}}", timeout: 2s }}
        retry: {{ attempts: 2, backoff: fixed, initial: 10ms, jitter: false }}
"#,
        receiver = receiver.base
    );
    std::fs::write(folder.path().join("leaky.yaml"), flow).unwrap();
    let data = folder.path().join("data");
    let log_path = folder.path().join("server.log");
    let mut command = binary();
    command
        .env("RUST_LOG", "debug")
        .env("SWITCHBOARD_SECRET_API_TOKEN", SECRET)
        .stderr(std::fs::File::create(&log_path).unwrap());
    let server = ServeProcess::start_command(
        command,
        &folder.path().join("leaky.yaml"),
        &data,
        &["--log-format", "json"],
    );
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/hooks/leaky/echo", server.base))
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    let id = crate::support::execution_id(response).await;
    let execution = crate::support::wait_for_execution(&client, &server.base, &id).await;
    assert_eq!(
        execution["status"], "failed",
        "the last step fails, with the secret in its URL"
    );

    let received = receiver.requests();
    assert_eq!(received.len(), 1);
    let sent = String::from_utf8_lossy(&received[0].raw);
    assert!(
        sent.contains(SECRET),
        "the partner got the secret in the body: {sent}"
    );
    assert_eq!(
        received[0].headers["authorization"],
        format!("Bearer {SECRET}"),
        "the flow did use the secret"
    );

    let mut answers = String::new();
    for path in [
        format!("/api/v1/executions/{id}"),
        String::from("/api/v1/executions"),
        String::from("/api/v1/integrations/leaky"),
        String::from("/metrics"),
    ] {
        let response = client.get(format!("{}{path}", server.base)).send().await;
        let text = response.unwrap().text().await.unwrap();
        assert!(!text.contains(SECRET), "{path} shows the secret:\n{text}");
        answers.push_str(&text);
    }
    assert!(
        answers.contains("***"),
        "the redacted places are marked:\n{answers}"
    );
    assert_eq!(server.terminate(), 0);

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("token is ***"),
        "the log step's line is logged, redacted:\n{log}"
    );
    assert!(!log.contains(SECRET), "the log shows the secret:\n{log}");
    // Every file of the data folder, its subfolders (the default file root) included.
    let mut folders = vec![data.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes
                .windows(SECRET.len())
                .any(|window| window == SECRET.as_bytes());
            assert!(!found, "{} holds the secret", path.display());
        }
    }
}

#[test]
fn the_documented_rules_pass_promtool_and_every_metric_is_documented() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let operations = std::fs::read_to_string(docs.join("operations.md")).unwrap();
    for name in switchboard_telemetry::metrics::ALL
        .iter()
        .map(|metric| metric.name)
    {
        assert!(
            operations.contains(&format!("`{name}`")),
            "docs/operations.md does not describe {name}"
        );
    }
    let rules = std::fs::read_to_string(docs.join("prometheus-rules.yaml")).unwrap();
    let used = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("switchboard_"));
    for word in used {
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| word.strip_suffix(suffix))
            .unwrap_or(word);
        assert!(
            switchboard_telemetry::metrics::ALL
                .iter()
                .any(|metric| metric.name == family),
            "the rules use {word}, which is no metric"
        );
    }
    let Some(promtool) = require_tool("promtool", "Debian package prometheus") else {
        return;
    };
    let output = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(docs.join("prometheus-rules.yaml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
