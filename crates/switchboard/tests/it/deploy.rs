//! Deployments and hot reload, against the real binary: `deploy` flows on first start,
//! change and removal (and never twice), and `serve --watch` swapping the project with
//! work queued, refusing a broken version.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Receiver, ServeProcess, wait_for_execution};

fn registering(provider: &str, greeting: &str) -> String {
    format!(
        r#"
name: app
config:
  greeting: {{ default: "{greeting}" }}
flows:
  incoming:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: hello
        transform: '$config.greeting'
  register:
    trigger: {{ deploy: {{ on: [deployed, updated] }} }}
    steps:
      - id: subscribe
        http: {{ method: POST, url: "{provider}/subscriptions", json: '{{url: .hooks.incoming, event: .event}}' }}
      - id: remember
        state: {{ set: subscription, value: '.event', scope: integration }}
  unregister:
    trigger: {{ deploy: {{ on: [removed] }} }}
    steps:
      - id: unsubscribe
        http: {{ method: DELETE, url: "{provider}/subscriptions/app" }}
"#
    )
}

/// The executions of a flow, newest first.
async fn executions(base: &str, flow: &str) -> Vec<Value> {
    let url = format!("{base}/api/v1/executions?integration=app&flow={flow}");
    let page: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until the provider has `count` requests.
async fn requests(provider: &Receiver, count: usize) -> Vec<crate::support::Captured> {
    for _ in 0..200 {
        if provider.requests().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    provider.requests()
}

fn serve(project: &Path, data: &Path) -> ServeProcess {
    ServeProcess::start(project, data, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_flows_run_once_per_deployment_change_and_removal() {
    let provider = Receiver::start().await;
    let project = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let file = project.path().join("app.yaml");
    std::fs::write(&file, registering(&provider.base, "hello")).unwrap();
    std::fs::write(
        project.path().join("other.yaml"),
        "name: other\nflows:\n  ping:\n    trigger: { webhook: {} }\n    steps: [{ id: pong, transform: '1' }]\n",
    )
    .unwrap();

    // First start: deployed, with the URL of the integration's hook.
    let server = serve(project.path(), data.path());
    let seen = requests(&provider, 1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/subscriptions");
    assert_eq!(seen[0].body["event"], "deployed");
    assert_eq!(
        seen[0].body["url"],
        format!("{}/hooks/app/incoming", server.base)
    );
    let registered = executions(&server.base, "register").await;
    let registered = wait_for_execution(
        &reqwest::Client::new(),
        &server.base,
        registered[0]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(registered["status"], "succeeded", "{registered:#}");
    assert_eq!(
        registered["trigger"],
        json!({"kind": "deploy", "event": "deployed", "integration": "app"})
    );
    assert_eq!(server.terminate(), 0);

    // The same project again: nothing to deploy.
    let server = serve(project.path(), data.path());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(executions(&server.base, "register").await.len(), 1);
    assert_eq!(provider.requests().len(), 1);
    assert_eq!(server.terminate(), 0);

    // A changed file: updated.
    std::fs::write(&file, registering(&provider.base, "hi")).unwrap();
    let server = serve(project.path(), data.path());
    let seen = requests(&provider, 2).await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body["event"], "updated");
    assert_eq!(server.terminate(), 0);

    // The file removed: its removed flow runs, from the version last deployed.
    std::fs::remove_file(&file).unwrap();
    let server = serve(project.path(), data.path());
    let seen = requests(&provider, 3).await;
    assert_eq!(seen.len(), 3, "the removed flow called the provider");
    assert_eq!(seen[2].path, "/subscriptions/app");
    let removed = executions(&server.base, "unregister").await;
    assert_eq!(removed.len(), 1);
    let removed = wait_for_execution(
        &reqwest::Client::new(),
        &server.base,
        removed[0]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(removed["status"], "succeeded", "{removed:#}");
    assert_eq!(removed["input"]["event"], "removed");
    // Its hooks are gone with it.
    let gone = reqwest::Client::new()
        .post(format!("{}/hooks/app/incoming", server.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(server.terminate(), 0);
}

fn worker(version: &str, extra: bool) -> String {
    let mut yaml = format!(
        r#"
name: app
flows:
  work:
    trigger: {{ webhook: {{}} }}
    steps:
      - id: nap
        sleep: 1s
      - id: done
        transform: '"{version}"'
"#
    );
    if extra {
        yaml.push_str(
            "  extra:\n    trigger: { webhook: {} }\n    steps: [{ id: out, transform: '\"extra\"' }]\n",
        );
    }
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_with_work_queued_and_keeps_the_running_version_on_problems() {
    let project = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let file = project.path().join("app.yaml");
    std::fs::write(&file, worker("v1", false)).unwrap();
    let server = ServeProcess::start(
        project.path(),
        data.path(),
        &["--watch", "--watch-interval", "100ms"],
    );
    let client = reqwest::Client::new();
    let mut queued = Vec::new();
    for n in 0..3 {
        let response = client
            .post(format!("{}/hooks/app/work", server.base))
            .json(&json!({"n": n}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let accepted: Value = response.json().await.unwrap();
        queued.push(accepted["execution_id"].as_str().unwrap().to_owned());
    }

    // A new version while the three sleep: they finish on it, none is dropped.
    std::fs::write(&file, worker("v2", true)).unwrap();
    let mut reloaded = false;
    for _ in 0..100 {
        let integration: Value = client
            .get(format!("{}/api/v1/integrations/app", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let flows = integration["flows"].as_array().cloned().unwrap_or_default();
        if flows.iter().any(|flow| flow["name"] == "extra") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new flow never appeared");
    let document: Value = client
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        document["paths"]["/hooks/app/extra"]["post"].is_object(),
        "the document follows the reload"
    );
    for id in &queued {
        let execution = wait_for_execution(&client, &server.base, id).await;
        assert_eq!(execution["status"], "succeeded", "{execution:#}");
        assert_eq!(execution["output"], "v2");
    }

    // A broken version is refused; the running one keeps answering.
    std::fs::write(
        &file,
        worker("v3", true).replace("transform: '\"extra\"'", "transform: '\"extra'"),
    )
    .unwrap();
    let mut refused = false;
    for _ in 0..100 {
        let metrics = client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("switchboard_project_reloads_total{outcome=\"refused\"} 1") {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the broken version was not reported");
    let response = client
        .post(format!("{}/hooks/app/extra", server.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let execution = wait_for_execution(&client, &server.base, &id).await;
    assert_eq!(execution["output"], "extra");
    assert_eq!(server.terminate(), 0);
}
