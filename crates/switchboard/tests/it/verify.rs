//! Inbound signature checks over HTTP: requests signed by the reference
//! `standardwebhooks` library (PyPI) pass, tampered, stale and unsigned ones are refused
//! with the check that failed, and a repeated `webhook-id` starts nothing.

use std::process::Command;

use serde_json::{Value, json};
use switchboard_core::Timestamp;

use crate::support::{TestServer, require_tool};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const PROJECT: &str = r#"
name: partner
flows:
  events:
    trigger:
      webhook:
        verify: { scheme: standard-webhooks, secrets: ["whsec_c3RhbGUtc2VjcmV0LW5vdC11c2Vk", "${{ $config.signing }}"] }
    steps:
      - id: echo
        transform: .
  pushes:
    trigger:
      webhook:
        verify: { scheme: hmac, header: X-Signature, algorithm: sha512, encoding: base64, prefix: "sha512=", secret: "plain-secret" }
    steps:
      - id: echo
        transform: .
config:
  signing: { default: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
"#;

/// The `webhook-signature` the reference library makes, or `None` when the library is
/// not installed (outside CI).
fn reference_signature(id: &str, timestamp: i64, body: &str) -> Option<String> {
    let python = require_tool(
        "python",
        "the venv .ci/run makes, with PyPI standardwebhooks",
    )?;
    let script = "import sys, datetime\n\
        from standardwebhooks.webhooks import Webhook\n\
        at = datetime.datetime.fromtimestamp(int(sys.argv[3]), tz=datetime.timezone.utc)\n\
        print(Webhook(sys.argv[1]).sign(sys.argv[2], at, sys.argv[4]))";
    let output = Command::new(python)
        .args(["-c", script, SECRET, id, &timestamp.to_string(), body])
        .output()
        .unwrap();
    if !output.status.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the standardwebhooks library is missing: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("skipped: PyPI standardwebhooks is not installed; .ci/run installs it");
        return None;
    }
    Some(String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

async fn deliver(
    server: &TestServer,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: &str,
) -> (u16, Value) {
    let response = server
        .client
        .post(server.url("/hooks/partner/events"))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn standard_webhooks_signed_by_the_reference_library_pass_and_others_are_refused() {
    let now = Timestamp::now().millis() / 1000;
    let body = r#"{"type":"invoice.paid","amount":42}"#;
    let Some(signature) = reference_signature("msg_1", now, body) else {
        return;
    };
    let server = TestServer::start(PROJECT).await;

    let (status, accepted) = deliver(&server, "msg_1", now, &signature, body).await;
    assert_eq!(status, 202, "{accepted}");
    let execution = server
        .finished_execution(accepted["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(
        execution["input"],
        json!({"type": "invoice.paid", "amount": 42})
    );

    let (status, again) = deliver(&server, "msg_1", now, &signature, body).await;
    assert_eq!(
        status, 200,
        "a redelivery with the same webhook-id starts nothing"
    );
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["execution_id"], accepted["execution_id"]);

    let tampered = body.replace("42", "4200");
    let (status, refused) = deliver(&server, "msg_2", now, &signature, &tampered).await;
    assert_eq!(status, 401);
    assert_eq!(refused["error"]["code"], "invalid_signature");

    let old = now - 600;
    let stale = reference_signature("msg_3", old, body).unwrap();
    let (status, refused) = deliver(&server, "msg_3", old, &stale, body).await;
    assert_eq!(status, 401);
    assert_eq!(refused["error"]["code"], "stale_timestamp");

    let unsigned = server
        .post_hook("/hooks/partner/events", &json!({"type": "x"}))
        .await;
    assert_eq!(unsigned.0, 401);
    assert_eq!(unsigned.1["error"]["code"], "missing_signature");
    assert_eq!(
        unsigned.1["error"]["message"],
        "the request has no `webhook-id` header"
    );

    let (_, listed) = server.get_json("/api/v1/executions?flow=events").await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "nothing refused was stored"
    );
    let metrics = server.get_text("/metrics").await;
    for reason in ["invalid_signature", "stale_timestamp", "missing_signature"] {
        let line = format!(
            r#"switchboard_webhooks_received_total{{integration="partner",flow="events",outcome="rejected",reason="{reason}"}} 1"#
        );
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_generic_hmac_checks_its_header() {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let server = TestServer::start(PROJECT).await;
    let body = r#"{"ref":"main"}"#;
    let mut mac = <hmac::Hmac<sha2::Sha512> as KeyInit>::new_from_slice(b"plain-secret").unwrap();
    mac.update(body.as_bytes());
    let signature = format!(
        "sha512={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let send = |signature: String, body: &'static str| {
        server
            .client
            .post(server.url("/hooks/partner/pushes"))
            .header("x-signature", signature)
            .body(body)
            .send()
    };
    assert_eq!(
        send(signature.clone(), r#"{"ref":"main"}"#)
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        send(signature, r#"{"ref":"evil"}"#).await.unwrap().status(),
        401
    );
    server.stop().await;
}

const HANDSHAKES: &str = r#"
name: handshakes
flows:
  slack-events:
    trigger:
      webhook:
        challenge: slack
        verify: { scheme: slack, secret: "slack-signing-secret" }
    steps:
      - id: echo
        transform: .
  dropbox:
    trigger:
      webhook:
        methods: [GET, POST]
        challenge: '$trigger.query.challenge'
    steps:
      - id: echo
        transform: .
"#;

#[tokio::test]
async fn handshakes_are_answered_by_the_challenge_and_start_nothing() {
    let server = TestServer::start(HANDSHAKES).await;
    let response = server
        .client
        .post(server.url("/hooks/handshakes/slack-events"))
        .json(&json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    // Anything else to the Slack flow still needs its signature.
    let (status, refused) = server
        .post_hook(
            "/hooks/handshakes/slack-events",
            &json!({"type": "event_callback"}),
        )
        .await;
    assert_eq!(status, 401, "{refused}");

    let response = server
        .client
        .get(server.url("/hooks/handshakes/dropbox?challenge=abc123"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(response.text().await.unwrap(), "abc123");
    let (_, executions) = server.get_json("/api/v1/executions").await;
    assert_eq!(executions["items"], json!([]), "a handshake starts nothing");

    let (status, accepted) = server
        .post_hook("/hooks/handshakes/dropbox", &json!({"list_folder": {}}))
        .await;
    assert_eq!(
        status, 202,
        "a request that is no handshake runs: {accepted}"
    );
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"flow="slack-events",integration="handshakes",outcome="handshake"} 1"#)
            || metrics.contains(r#"outcome="handshake""#),
        "{metrics}"
    );
    server.stop().await;
}
