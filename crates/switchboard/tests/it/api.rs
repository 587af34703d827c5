//! The management API and health routes.

use serde_json::json;

use crate::support::TestServer;

const PROJECT: &str = r#"
name: shop
description: A shop.
config:
  region: { default: eu, description: Where the shop is }
flows:
  a:
    description: Flow a.
    trigger: { webhook: { methods: [POST] } }
    steps: [{ id: x, transform: . }]
  b:
    trigger: { webhook: {} }
    steps: [{ id: y, fail_me: 1 }]
"#;

fn valid_project() -> String {
    PROJECT.replace(
        "{ id: y, fail_me: 1 }",
        "{ id: y, transform: 'error(\"no\")' }",
    )
}

#[tokio::test]
async fn integrations_are_listed_with_their_hook_urls() {
    let server = TestServer::start(&valid_project()).await;
    let (status, list) = server.get_json("/api/v1/integrations").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["name"], "shop");
    assert!(list["next_cursor"].is_null());
    let (status, shop) = server.get_json("/api/v1/integrations/shop").await;
    assert_eq!(status, 200);
    assert_eq!(
        shop["config"][0],
        json!({"name": "region", "value": "eu", "description": "Where the shop is"})
    );
    let flow = &shop["flows"][0];
    assert_eq!(flow["name"], "a");
    assert_eq!(flow["trigger"]["hook_path"], "/hooks/shop/a");
    assert_eq!(flow["trigger"]["hook_url"], server.url("/hooks/shop/a"));
    assert_eq!(flow["steps"], json!([{"id": "x", "kind": "transform"}]));
    let (status, missing) = server.get_json("/api/v1/integrations/nope").await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "not_found");
}

#[tokio::test]
async fn executions_are_listed_newest_first_with_filters_and_cursors() {
    let server = TestServer::start(&valid_project()).await;
    let mut ids = Vec::new();
    for index in 0..5 {
        let flow = if index < 3 { "a" } else { "b" };
        let (_, body) = server
            .post_hook(&format!("/hooks/shop/{flow}"), &json!({"n": index}))
            .await;
        ids.push(body["execution_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        server.finished_execution(id).await;
    }
    let (_, page) = server.get_json("/api/v1/executions?limit=2").await;
    assert_eq!(page["items"][0]["id"], ids[4]);
    assert_eq!(page["items"][1]["id"], ids[3]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = server
        .get_json(&format!("/api/v1/executions?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(next["items"][0]["id"], ids[2]);
    let (_, failed) = server.get_json("/api/v1/executions?status=failed").await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 2);
    assert_eq!(failed["items"][0]["error"]["code"], "expression_failed");
    let (_, of_a) = server
        .get_json("/api/v1/executions?integration=shop&flow=a")
        .await;
    assert_eq!(of_a["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn bad_queries_name_the_parameter() {
    let server = TestServer::start(&valid_project()).await;
    for (query, path) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("status=done", "status"),
        ("cursor=abc", "cursor"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = server
            .get_json(&format!("/api/v1/executions?{query}"))
            .await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "invalid_query", "{query}");
        assert_eq!(body["error"]["path"], path, "{query}");
    }
    let (status, body) = server
        .get_json("/api/v1/executions/exe_01J00000000000000000000000")
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = server.get_json("/api/v1/executions/not-an-id").await;
    assert_eq!(status, 404);
    let (status, body) = server.get_json("/api/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let server = TestServer::start(&valid_project()).await;
    assert_eq!(
        server.get_json("/healthz").await,
        (200, json!({"status": "ok"}))
    );
    let (status, ready) = server.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "ready");
    server.stop().await;
}

#[test]
fn the_invalid_variant_of_this_project_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("shop.yaml");
    std::fs::write(&file, PROJECT).unwrap();
    let problems = switchboard_project::load(&[file]).unwrap_err();
    assert!(
        problems.to_string().contains("unknown field `fail_me`"),
        "{problems}"
    );
}
