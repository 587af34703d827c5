//! The bundled examples, one per pattern of the seeds, served by the real binary with
//! their third-party stand-ins (`examples/sandbox.yaml`) on the same server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Receiver, ServeProcess, examples, reference_accepts, run_schedule, wait_for_execution,
    wait_for_file,
};

const CALLBACK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The examples served on a free port, their URLs pointed at that port.
struct Examples {
    server: ServeProcess,
    client: reqwest::Client,
    data: tempfile::TempDir,
}

impl Examples {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sandbox = format!("http://127.0.0.1:{port}/hooks/sandbox");
        let config = [
            format!("order-fanout.sandbox_url={sandbox}"),
            format!("quotes.sandbox_url={sandbox}"),
            format!("crm-import.app_url={sandbox}"),
            format!("crm-import.crm_url={sandbox}"),
            format!("crm-poll.crm_url={sandbox}"),
            format!("crm-poll.app_url={sandbox}"),
            format!("file-exchange.api_url=http://127.0.0.1:{port}/api/v1"),
            format!("contact-sync.crm_url={sandbox}/crm-contacts"),
            format!("contact-sync.shop_url={sandbox}/shop-customers"),
            format!("shop-orders.erp_url=http://127.0.0.1:{port}/hooks/erp-sandbox"),
        ]
        .join(",");
        let listen = format!("127.0.0.1:{port}");
        let data = tempfile::tempdir().unwrap();
        let mut command = crate::support::binary();
        command
            .env("RUST_LOG", "warn")
            .env("SWITCHBOARD_SECRET_QUOTES_CALLBACK_SECRET", CALLBACK_SECRET)
            .stderr(std::process::Stdio::null());
        let extra = [
            "--listen",
            &listen,
            "--config",
            &config,
            "--webhook-allow-network",
            "127.0.0.0/8",
        ];
        let server = ServeProcess::start_command(command, &examples(), data.path(), &extra);
        Self {
            server,
            client: reqwest::Client::new(),
            data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts to a hook, expects `202`, and returns the execution once it ended.
    async fn run_hook(&self, path: &str, body: &Value) -> Value {
        let response = self.post(path, body).await;
        assert_eq!(response.status(), 202);
        let accepted: Value = response.json().await.unwrap();
        wait_for_execution(
            &self.client,
            &self.server.base,
            accepted["execution_id"].as_str().unwrap(),
        )
        .await
    }

    /// The ended executions of a flow, once there are `count` of them.
    async fn ended(&self, integration: &str, flow: &str, count: usize) -> Vec<Value> {
        let url = self.url(&format!(
            "/api/v1/executions?integration={integration}&flow={flow}"
        ));
        for _ in 0..200 {
            let page: Value = self
                .client
                .get(&url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let items = page["items"].as_array().cloned().unwrap_or_default();
            let ended = items.iter().all(|item| {
                ["succeeded", "failed", "cancelled"]
                    .contains(&item["status"].as_str().unwrap_or(""))
            });
            if items.len() >= count && ended {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{integration}/{flow} did not have {count} ended executions");
    }

    /// The full record of an execution.
    async fn execution(&self, id: &Value) -> Value {
        wait_for_execution(&self.client, &self.server.base, id.as_str().unwrap()).await
    }
}

fn payload(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(examples().join("payloads").join(name)).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run_each_pattern_of_the_seeds() {
    let examples = Examples::start();

    // One-way export: the shop's order, totalled and forwarded to the ERP.
    let exported = examples
        .run_hook("/hooks/shop-orders/receive-order", &payload("order.json"))
        .await;
    assert_eq!(exported["status"], "succeeded", "{exported:#}");
    let received = examples.ended("erp-sandbox", "orders", 1).await;
    let received = examples.execution(&received[0]["id"]).await;
    assert_eq!(
        received["input"],
        json!({"id": "ord_1001", "email": "ada@example.com", "total": 55.0})
    );

    // Fan-out (seed 003): one event, three independent subscribers.
    let placed = examples
        .run_hook("/hooks/order-fanout/order-placed", &payload("order.json"))
        .await;
    assert_eq!(placed["status"], "succeeded", "{placed:#}");
    for (flow, api, expected) in [
        (
            "reserve-stock",
            "reservations",
            json!({"reservation_id": "res-ord_1001", "lines": 2}),
        ),
        (
            "create-invoice",
            "invoices",
            json!({"invoice_id": "inv-ord_1001", "amount": 55.0}),
        ),
        (
            "notify-customer",
            "mail",
            json!({"queued": true, "to": "ada@example.com"}),
        ),
    ] {
        let ran = examples.ended("order-fanout", flow, 1).await;
        assert_eq!(ran[0]["status"], "succeeded", "{flow}: {ran:#?}");
        let called = examples.ended("sandbox", api, 1).await;
        let called = examples.execution(&called[0]["id"]).await;
        assert_eq!(called["response"]["body"], expected, "{api}");
    }
    let events: Value = examples
        .client
        .get(examples.url("/api/v1/topics/invoice.created/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        events["items"][0]["data"],
        json!({"order": "ord_1001", "invoice": "inv-ord_1001"})
    );

    // API composition (seed 000): one invoke, three APIs at once, one answer.
    let quote = examples
        .post(
            "/invoke/quotes/quote",
            &json!({"customer": "vip-7", "sku": "A-100"}),
        )
        .await;
    assert_eq!(quote.status(), 200);
    assert_eq!(
        quote.json::<Value>().await.unwrap(),
        json!({"sku": "A-100", "customer": "Customer vip-7", "available": 15, "price": 17.55, "currency": "EUR"})
    );

    // Hang up and redial (seed 001): 202 past the wait, then a signed callback.
    let receiver = Receiver::start().await;
    let report = examples
        .client
        .post(examples.url("/invoke/quotes/report"))
        .header("Switchboard-Callback", format!("{}/reports", receiver.base))
        .json(&json!({"month": "2026-10"}))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 202);
    let location = report.headers()["location"].to_str().unwrap().to_owned();
    for _ in 0..100 {
        if !receiver.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let callbacks = receiver.requests();
    assert_eq!(callbacks.len(), 1, "one signed callback");
    assert_eq!(
        callbacks[0].body["response"]["body"],
        json!({"month": "2026-10", "orders": 42, "revenue": 1234.5})
    );
    if let Some(valid) = reference_accepts(CALLBACK_SECRET, &callbacks[0]) {
        assert!(valid, "the reference library refused the callback");
    }
    let polled = examples
        .client
        .get(examples.url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(polled.status(), 200);

    // Deploy-time registration (seed 001): at the first start, crm-import subscribed
    // the CRM's webhooks to its one URL.
    let subscribed = examples.ended("sandbox", "crm-webhooks", 1).await;
    let subscribed = examples.execution(&subscribed[0]["id"]).await;
    assert_eq!(
        subscribed["input"]["url"],
        examples.url("/hooks/crm-import/inbound")
    );
    let registered = examples.ended("crm-import", "register", 1).await;
    assert_eq!(registered[0]["status"], "succeeded");

    // One-way import through a pre-process flow (seed 001): dispatched by type.
    let inbound = examples
        .run_hook("/hooks/crm-import/inbound", &payload("crm-customer.json"))
        .await;
    assert_eq!(inbound["status"], "succeeded", "{inbound:#}");
    let imported = examples.ended("crm-import", "on-customer-updated", 1).await;
    assert_eq!(imported[0]["parent_id"], inbound["id"]);
    let imported = json!({"id": "c-17", "email": "ada@example.com", "name": "Ada Lovelace"});
    let mut found = false;
    for stored in examples.ended("sandbox", "app-customers", 1).await {
        found |= examples.execution(&stored["id"]).await["input"] == imported;
    }
    assert!(found, "the CRM's customer did not reach the app");
    let unknown = examples
        .run_hook(
            "/hooks/crm-import/inbound",
            &json!({"event_id": "evt-9002", "type": "invoice.paid", "data": {}}),
        )
        .await;
    assert_eq!(unknown["error"]["code"], "unknown_flow", "{unknown:#}");

    // Two-way sync with loop prevention (seed 001).
    let from_crm = examples
        .run_hook("/hooks/contact-sync/from-crm", &payload("crm-contact.json"))
        .await;
    assert_eq!(from_crm["status"], "succeeded", "{from_crm:#}");
    examples.ended("sandbox", "shop-customers", 1).await;
    // The shop echoes the change it was sent: recognised, not sent back to the CRM.
    let echo = json!({"event_id": "shop-1", "customer": {"id": "c-17", "email": "ada@example.com", "name": "Ada Lovelace"}});
    let echoed = examples
        .run_hook("/hooks/contact-sync/from-shop", &echo)
        .await;
    let push = echoed["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["id"] == "push")
        .unwrap();
    assert_eq!(push["status"], "skipped");
    // A real change in the shop goes to the CRM.
    let change = json!({"event_id": "shop-2", "customer": {"id": "c-17", "email": "ada@example.com", "name": "Ada King"}});
    let changed = examples
        .run_hook("/hooks/contact-sync/from-shop", &change)
        .await;
    assert_eq!(changed["status"], "succeeded");
    let crm = examples.ended("sandbox", "crm-contacts", 1).await;
    let crm = examples.execution(&crm[0]["id"]).await;
    assert_eq!(crm["input"]["name"], "Ada King");

    // Scheduled import by polling (seed 001): the change feed's contacts, paged, each
    // published once and written to the app; a second run publishes nothing new.
    let schedule = examples
        .client
        .get(examples.url("/api/v1/schedules/crm-poll/poll"))
        .send()
        .await
        .unwrap();
    let schedule: Value = schedule.json().await.unwrap();
    assert_eq!(schedule["timing"], "every 1m", "{schedule:#}");
    assert_eq!(schedule["next_fires"].as_array().unwrap().len(), 5);
    // Paused, it runs only when asked (a fire on the minute may have run already).
    let paused = examples
        .post("/api/v1/schedules/crm-poll/poll/pause", &json!({}))
        .await;
    assert_eq!(paused.status(), 200);
    run_schedule(&examples.client, &examples.server.base, "crm-poll/poll").await;
    let events: Value = examples
        .client
        .get(examples.url("/api/v1/topics/crm.contact.changed/events?limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The feed has a change a minute for the last ten minutes, two a page.
    let published = events["items"].as_array().unwrap().len();
    assert!(published >= 10, "{events:#}");
    let upserts = examples
        .ended("crm-poll", "upsert-contact", published)
        .await;
    assert!(upserts.iter().all(|run| run["status"] == "succeeded"));
    let again = run_schedule(&examples.client, &examples.server.base, "crm-poll/poll").await;
    let republished = again["steps"][2]["output"]["ids"].as_array().unwrap().len();
    assert!(
        republished <= 1,
        "only a change made since can be new: {again:#}"
    );

    // File import and scheduled export (seed 001): a CSV dropped into the inbox becomes
    // one event per row and moves to processed/; the report writes a dated CSV and NDJSON.
    let files = examples.data.path().join("files");
    std::fs::create_dir_all(files.join("inbox")).unwrap();
    std::fs::copy(
        crate::support::examples().join("payloads/orders.csv"),
        files.join("inbox/orders.csv"),
    )
    .unwrap();
    // Looked at every 5s, taken once it held still for 5s, moved once imported.
    wait_for_file(&files.join("processed/orders.csv"), Duration::from_secs(30)).await;
    let imported = examples.ended("file-exchange", "import-orders", 1).await;
    assert_eq!(imported[0]["status"], "succeeded", "{imported:#?}");
    let report = run_schedule(
        &examples.client,
        &examples.server.base,
        "file-exchange/nightly-report",
    )
    .await;
    let day = &report["input"]["scheduled_at"].as_str().unwrap()[0..10];
    let csv = std::fs::read_to_string(files.join(format!("outbox/imports-{day}.csv"))).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("execution,file_taken_at,finished_at"));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(imported[0]["id"].as_str().unwrap()),
        "{csv}"
    );
    let ndjson =
        std::fs::read_to_string(files.join(format!("outbox/imports-{day}.ndjson"))).unwrap();
    assert_eq!(ndjson.lines().count(), 1, "{ndjson}");

    assert_eq!(examples.server.terminate(), 0);
}
