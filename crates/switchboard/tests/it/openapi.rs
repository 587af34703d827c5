//! The described API: `/openapi.json`, the bundled `/docs` page, and schemathesis
//! against a running server finding nothing.

use serde_json::{Value, json};

use crate::support::{ServeProcess, TestServer, examples, require_tool};

const PROJECT: &str = r#"
name: shop
flows:
  orders:
    description: Orders from the shop.
    trigger: { webhook: { methods: [POST, PUT], accept: json } }
    steps:
      - id: echo
        transform: .
  pings:
    trigger: { webhook: { methods: [GET] } }
    steps:
      - id: echo
        transform: .
"#;

#[tokio::test]
async fn the_document_describes_every_route_and_each_hook_of_the_project() {
    let server = TestServer::start(PROJECT).await;
    let (status, document) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/integrations", "get"),
        ("/api/v1/integrations/{name}", "get"),
        ("/api/v1/executions", "get"),
        ("/api/v1/executions/{id}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/hooks/shop/orders", "post"),
        ("/hooks/shop/orders", "put"),
        ("/hooks/shop/pings", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    assert!(
        !paths.contains_key("/hooks/{integration}/{flow}"),
        "the generic hook is replaced"
    );
    let orders = &paths["/hooks/shop/orders"]["post"];
    assert_eq!(orders["description"], "Orders from the shop.");
    let formats: Vec<_> = orders["requestBody"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        formats,
        ["application/json"],
        "an `accept: json` hook takes JSON only"
    );
    assert!(paths["/hooks/shop/pings"]["get"]["requestBody"].is_null());

    let error = json!({"$ref": "#/components/schemas/ErrorBody"});
    let list = &paths["/api/v1/executions"]["get"];
    assert_eq!(
        list["responses"]["400"]["content"]["application/json"]["schema"],
        error
    );
    let names: Vec<_> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "integration",
            "flow",
            "status",
            "parent_id",
            "limit",
            "cursor"
        ]
    );
    assert!(paths["/invoke/{integration}/{flow}"]["post"]["responses"]["202"].is_object());
    assert!(paths["/invoke/{integration}/{flow}/{execution_id}"]["get"].is_object());
    let schemas = &document["components"]["schemas"];
    for schema in [
        "ExecutionDetail",
        "ExecutionSummary",
        "StepRecord",
        "ErrorBody",
        "IntegrationView",
        "Accepted",
    ] {
        assert!(schemas[schema].is_object(), "no schema {schema}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_reference_page_is_served_from_the_binary() {
    let server = TestServer::start(PROJECT).await;
    let page = server
        .client
        .get(server.url("/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let response = server
            .client
            .get(server.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let text = response.text().await.unwrap();
        assert!(text.len() > 100, "{asset} is empty");
        if asset == "swagger-initializer.js" {
            assert!(text.contains("/openapi.json"), "{text}");
            assert!(
                !text.contains("https://"),
                "the page loads from elsewhere: {text}"
            );
        }
    }
    assert!(
        !html.contains("https://"),
        "the page loads something from elsewhere"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_allow() {
    let server = TestServer::start(PROJECT).await;
    let response = server
        .client
        .delete(server.url("/api/v1/executions"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    server.stop().await;
}

/// Schemathesis generates requests from the document (valid and invalid ones, every
/// method) and checks every answer: no 5xx, the status and body match the document,
/// invalid input is refused and valid input taken. The seed is fixed so CI is repeatable;
/// run `schemathesis run http://HOST/openapi.json` by hand to explore more.
#[tokio::test]
async fn schemathesis_finds_nothing_against_a_running_server() {
    let Some(schemathesis) = require_tool(
        "schemathesis",
        "PyPI schemathesis, in the venv .ci/run makes",
    ) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&examples(), data.path(), &[]);
    let order = std::fs::read_to_string(examples().join("payloads/order.json")).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/hooks/shop-orders/receive-order", server.base))
        .header("content-type", "application/json")
        .body(order)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "an execution to look at");
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let output = tokio::process::Command::new(schemathesis)
        .arg("--config-file")
        .arg(config)
        .args(["run", &format!("{}/openapi.json", server.base)])
        // Every check runs (the default); tests/schemathesis.toml turns some off for
        // the operations it names, which `--checks all` would override.
        .args(["--max-examples", "60", "--workers", "1"])
        .args(["--seed", "20261123", "--request-timeout", "10"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(server.terminate(), 0);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    // Warnings (such as an operation that answered only 404 to generated ids) are not
    // findings; failures and errors are.
    assert!(
        !report.contains("FAILURES") && !report.contains("ERRORS"),
        "{report}"
    );
    assert!(
        report.contains("Test cases:"),
        "schemathesis ran no test:\n{report}"
    );
}
