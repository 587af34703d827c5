//! The `switchboard` command itself: validate, run, serve and its shutdown.

use serde_json::{Value, json};

use crate::support::{ServeProcess, binary, examples, wait_for_execution};

const BROKEN: &str = r#"name: broken
flows:
  first:
    trigger: { webhook: {} }
    steps:
      - id: a
        tranform: .
  second:
    trigger: { webhook: {} }
    steps:
      - id: b
        transform: '{x: .y |}'
"#;

#[test]
fn validate_accepts_the_examples() {
    let output = binary().arg("validate").arg(examples()).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ok: 9 integrations"));
}

#[test]
fn validate_prints_one_located_line_per_problem_and_fails() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("broken.yaml"), BROKEN).unwrap();
    std::fs::write(folder.path().join("syntax.yaml"), "name: s\nflows: {a: [\n").unwrap();
    let output = binary()
        .arg("validate")
        .arg(folder.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    let broken = folder.path().join("broken.yaml");
    assert!(
        lines[0].starts_with(&format!(
            "{}:7:9: unknown field `tranform`",
            broken.display()
        )),
        "{stderr}"
    );
    assert!(lines[0].ends_with("did you mean `transform`?"), "{stderr}");
    assert!(
        lines[1].starts_with(&format!("{}:", folder.path().join("syntax.yaml").display())),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_an_invalid_project_with_the_same_lines() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("broken.yaml");
    std::fs::write(&file, BROKEN.replace("tranform", "transform")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let output = binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:12:29: transform: jq syntax error",
            file.display()
        )),
        "{stderr}"
    );
}

#[test]
fn run_executes_one_flow_and_prints_the_execution() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("calc.yaml");
    std::fs::write(
        &file,
        "name: calc\nflows:\n  total:\n    trigger: { webhook: {} }\n    steps:\n      - id: sum\n        transform: '[.[] | .n] | add'\n      - id: check\n        transform: 'if $steps.sum > 10 then error(\"too much\") else $steps.sum end'\n",
    )
    .unwrap();
    let output = binary()
        .arg("run")
        .arg(&file)
        .arg("total")
        .args(["--input", r#"[{"n": 2}, {"n": 3}]"#])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let execution: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(execution["status"], "succeeded");
    assert_eq!(execution["steps"][1]["output"], json!(5));

    let input = folder.path().join("input.json");
    std::fs::write(&input, r#"[{"n": 20}]"#).unwrap();
    let output = binary()
        .arg("run")
        .arg(&file)
        .arg("total")
        .arg("--input")
        .arg(format!("@{}", input.display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let execution: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(execution["status"], "failed");
    assert_eq!(execution["error"]["message"], "transform: too much");
}

#[tokio::test]
async fn serve_runs_the_bundled_example_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&examples(), data.path(), &[]);
    let client = reqwest::Client::new();
    // The example's ERP is a hook of the same server; point it at this one's port.
    let order: Value = serde_json::from_str(
        &std::fs::read_to_string(examples().join("payloads/order.json")).unwrap(),
    )
    .unwrap();
    let response = client
        .post(format!("{}/hooks/shop-orders/receive-order", server.base))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let execution = wait_for_execution(&client, &server.base, &id).await;
    assert_eq!(execution["steps"][0]["output"]["total"], json!(55.0));
    assert_eq!(execution["steps"][0]["status"], "succeeded");
    assert_eq!(server.terminate(), 0, "SIGTERM ends serve with exit code 0");
}
