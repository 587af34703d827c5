//! Schedules through the real server: fires on time with their trigger data, the
//! schedules API (next fires, recent fires, run, pause, resume), overlap policies, and
//! no fire doubled or lost across a SIGKILL at the fire instant or a downtime.
//!
//! The calendar behaviour (time zones, DST, catch-up and its bounds) is tested with
//! injected time where it is computed: `switchboard_project::schedule` and
//! `switchboard_engine::schedules`; the claim and overlap rules in the store's tests.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::Timestamp;

use crate::support::{ServeProcess, TestServer, executions_of, run_schedule};

/// Every execution of `flow`, with its trigger, in the order of its scheduled time.
async fn runs(client: &reqwest::Client, base: &str, flow: &str) -> Vec<Value> {
    let mut runs = executions_of(client, base, flow).await;
    runs.sort_by_key(scheduled_at);
    runs
}

fn scheduled_at(run: &Value) -> i64 {
    let text = run["trigger"]["scheduled_at"].as_str().unwrap();
    Timestamp::parse_rfc3339(text).unwrap().millis()
}

fn millis(text: &Value) -> i64 {
    Timestamp::parse_rfc3339(text.as_str().unwrap())
        .unwrap()
        .millis()
}

/// No two of the succeeded `runs` overlapped in time.
fn assert_one_at_a_time(runs: &[Value]) {
    let mut spans: Vec<(i64, i64)> = runs
        .iter()
        .filter(|run| run["status"] == "succeeded")
        .map(|run| (millis(&run["started_at"]), millis(&run["finished_at"])))
        .collect();
    spans.sort();
    assert!(
        spans.windows(2).all(|pair| pair[0].1 <= pair[1].0),
        "{spans:?}"
    );
}

/// Polls until `flow` has at least `count` runs in a state of `states`.
async fn wait_for_runs(
    client: &reqwest::Client,
    base: &str,
    flow: &str,
    count: usize,
    states: &[&str],
) -> Vec<Value> {
    for _ in 0..300 {
        let all = runs(client, base, flow).await;
        let matching = all
            .iter()
            .filter(|run| states.contains(&run["status"].as_str().unwrap_or("")))
            .count();
        if matching >= count {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{flow} never had {count} runs in {states:?}");
}

#[tokio::test]
async fn schedules_fire_on_time_and_the_api_lists_their_fires() {
    let server = TestServer::start(
        r#"
name: nightly
flows:
  tick:
    trigger: { schedule: { every: 1s } }
    steps:
      - id: echo
        transform: '{trigger: $trigger, input: .}'
  report:
    trigger: { schedule: { cron: "30 2 * * *", timezone: Europe/Berlin, catch_up: none } }
    steps:
      - id: noop
        transform: '.'
"#,
    )
    .await;
    let runs = wait_for_runs(&server.client, &server.base, "tick", 3, &["succeeded"]).await;
    let succeeded: Vec<&Value> = runs
        .iter()
        .filter(|run| run["status"] == "succeeded")
        .collect();
    let mut seen = BTreeSet::new();
    for run in &succeeded {
        let trigger = &run["trigger"];
        assert_eq!(trigger["kind"], "schedule", "{run}");
        assert_eq!(trigger["fire"], "scheduled", "{run}");
        let at = scheduled_at(run);
        assert_eq!(at % 1000, 0, "every: 1s fires on whole seconds: {run}");
        assert!(millis(&trigger["fired_at"]) >= at, "{run}");
        assert!(seen.insert(at), "fired twice: {run}");
        assert_eq!(
            trigger["fire_id"],
            format!("nightly/tick@{}", trigger["scheduled_at"].as_str().unwrap())
        );
        // The input is the trigger data.
        assert_eq!(run["input"]["scheduled_at"], trigger["scheduled_at"]);
        assert!(run["input"].get("last_success_at").is_some(), "{run}");
    }
    // A run after a success knows the scheduled time of the last one.
    let last = succeeded.last().unwrap();
    let earlier: Vec<i64> = succeeded[..succeeded.len() - 1]
        .iter()
        .map(|run| scheduled_at(run))
        .collect();
    let last_success = millis(&last["trigger"]["last_success_at"]);
    assert!(earlier.contains(&last_success), "{last}");

    let (status, list) = server.get_json("/api/v1/schedules").await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let report = &items[0];
    assert_eq!(report["flow"], "report");
    assert_eq!(report["timing"], "cron 30 2 * * * Europe/Berlin");
    assert_eq!(report["catch_up"], "none");
    assert_eq!(report["overlap"], "skip");
    assert_eq!(report["paused"], false);
    let next: Vec<&str> = report["next_fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|at| at.as_str().unwrap())
        .collect();
    assert_eq!(next.len(), 5, "{report}");
    for at in &next {
        // 02:30 in Berlin: 01:30 UTC in winter, 00:30 UTC in summer.
        assert!(
            at.ends_with("T01:30:00.000Z") || at.ends_with("T00:30:00.000Z"),
            "{at}"
        );
    }
    let tick = &items[1];
    assert_eq!(tick["timing"], "every 1s");
    let next_ticks: Vec<i64> = tick["next_fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(millis)
        .collect();
    assert!(next_ticks.windows(2).all(|pair| pair[1] - pair[0] == 1000));

    let (status, detail) = server.get_json("/api/v1/schedules/nightly/tick").await;
    assert_eq!(status, 200, "{detail}");
    let fires = detail["fires"].as_array().unwrap();
    assert!(fires.len() >= 3, "{detail}");
    assert!(
        fires.iter().all(|fire| fire["outcome"] == "fired"),
        "{detail}"
    );
    assert!(
        fires.iter().any(|fire| fire["execution_id"] == last["id"]),
        "{detail}"
    );

    let (status, missing) = server.get_json("/api/v1/schedules/nightly/nope").await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["code"], "not_found");

    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics
            .contains(r#"switchboard_schedule_fires_total{integration="nightly",outcome="fired"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("switchboard_schedule_lateness_seconds_bucket"));
    server.stop().await;
}

#[tokio::test]
async fn overlap_skip_skips_fires_and_refuses_a_run_by_hand_while_a_run_goes_on() {
    let server = TestServer::start(
        r#"
name: slow
flows:
  sync:
    trigger: { schedule: { every: 1s } }
    steps:
      - id: wait
        sleep: 2500ms
"#,
    )
    .await;
    let runs = wait_for_runs(&server.client, &server.base, "sync", 1, &["waiting"]).await;
    let running = runs.last().unwrap()["id"].as_str().unwrap().to_owned();
    let refused = server
        .client
        .post(server.url("/api/v1/schedules/slow/sync/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&running),
        "{body}"
    );
    // Fires while it sleeps are skipped and recorded so.
    let mut skipped = false;
    for _ in 0..50 {
        let (_, detail) = server.get_json("/api/v1/schedules/slow/sync").await;
        let fires = detail["fires"].as_array().unwrap();
        if let Some(fire) = fires.iter().find(|fire| fire["outcome"] == "skipped") {
            assert!(fire["execution_id"].is_null(), "{detail}");
            skipped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(skipped, "no fire was skipped");
    let runs = wait_for_runs(&server.client, &server.base, "sync", 2, &["succeeded"]).await;
    assert_one_at_a_time(&runs);
    server.stop().await;
}

#[tokio::test]
async fn overlap_queue_runs_every_fire_one_after_another() {
    let server = TestServer::start(
        r#"
name: queued
flows:
  sync:
    trigger: { schedule: { every: 1s, overlap: queue } }
    steps:
      - id: wait
        sleep: 1500ms
"#,
    )
    .await;
    let runs = wait_for_runs(&server.client, &server.base, "sync", 3, &["succeeded"]).await;
    let times: Vec<i64> = runs.iter().map(scheduled_at).collect();
    // Every fire was queued, none skipped: consecutive seconds.
    assert!(
        times.windows(2).all(|pair| pair[1] - pair[0] == 1000),
        "{times:?}"
    );
    assert_one_at_a_time(&runs);
    server.stop().await;
}

#[tokio::test]
async fn a_paused_schedule_does_not_fire_until_resumed_and_a_run_by_hand_fires_at_once() {
    let server = TestServer::start(
        r#"
name: pausable
flows:
  tick:
    trigger: { schedule: { cron: "0 0 1 1 *", overlap: allow } }
    steps:
      - id: noop
        transform: '.'
  fast:
    trigger: { schedule: { every: 1s } }
    steps:
      - id: noop
        transform: '.'
"#,
    )
    .await;
    // A yearly schedule fires by hand, now.
    let response = server
        .client
        .post(server.url("/api/v1/schedules/pausable/tick/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let run: Value = response.json().await.unwrap();
    let execution = server
        .finished_execution(run["execution_id"].as_str().unwrap())
        .await;
    assert_eq!(execution["status"], "succeeded");
    assert_eq!(execution["trigger"]["fire"], "manual");

    let paused = server
        .client
        .post(server.url("/api/v1/schedules/pausable/fast/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200);
    let paused: Value = paused.json().await.unwrap();
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(paused["next_fires"], json!([]), "{paused}");
    let before = runs(&server.client, &server.base, "fast").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let during = runs(&server.client, &server.base, "fast").await.len();
    assert_eq!(before, during, "a paused schedule fired");

    let resumed = server
        .client
        .post(server.url("/api/v1/schedules/pausable/fast/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let resumed: Value = resumed.json().await.unwrap();
    assert_eq!(resumed["paused"], false);
    // Resumed from now: the fires it missed while paused are not caught up.
    let resumed_at = millis(&resumed["next_fires"][0]) - 1000;
    wait_for_runs(
        &server.client,
        &server.base,
        "fast",
        before + 1,
        &["succeeded"],
    )
    .await;
    let after = runs(&server.client, &server.base, "fast").await;
    let new: Vec<i64> = after.iter().map(scheduled_at).skip(before).collect();
    assert!(new.iter().all(|at| *at >= resumed_at), "{new:?}");

    let missing = server
        .client
        .post(server.url("/api/v1/schedules/pausable/nope/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.stop().await;
}

/// Scheduled times of every run of `flow` on a `serve` process.
async fn scheduled_times(base: &str, flow: &str) -> Vec<i64> {
    let client = reqwest::Client::new();
    runs(&client, base, flow)
        .await
        .iter()
        .map(scheduled_at)
        .collect()
}

/// Sleeps until `offset` after the next whole second.
async fn sleep_until_second(offset: Duration) {
    let now = Timestamp::now().millis();
    let next = (now / 1000 + 1) * 1000;
    let wait = u64::try_from(next - now).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait) + offset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fire_is_doubled_or_lost_across_sigkill_at_the_fire_instant() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("ticks.yaml"),
        r#"
name: ticks
flows:
  tick:
    trigger: { schedule: { every: 1s, catch_up: all, overlap: allow } }
    steps:
      - id: noop
        transform: '.'
"#,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    // Killed at, just before and just after a fire instant.
    for offset in [0, 995, 5] {
        let server = ServeProcess::start(folder.path(), data.path(), &[]);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        sleep_until_second(Duration::from_millis(offset)).await;
        server.kill();
    }
    let server = ServeProcess::start(folder.path(), data.path(), &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let times = scheduled_times(&server.base, "tick").await;
    server.kill();
    assert!(times.len() >= 5, "{times:?}");
    let distinct: BTreeSet<i64> = times.iter().copied().collect();
    assert_eq!(distinct.len(), times.len(), "a fire doubled: {times:?}");
    assert!(
        times.windows(2).all(|pair| pair[1] - pair[0] == 1000),
        "a fire was lost: {times:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_catch_up_all_runs_every_missed_fire_and_latest_runs_one() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("downtime.yaml"),
        r#"
name: downtime
flows:
  every-fire:
    trigger: { schedule: { every: 1s, catch_up: all, overlap: allow } }
    steps:
      - id: noop
        transform: '.'
  latest-fire:
    trigger: { schedule: { every: 1s, catch_up: latest, overlap: allow } }
    steps:
      - id: noop
        transform: '.'
"#,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(folder.path(), data.path(), &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.terminate(), 0);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let server = ServeProcess::start(folder.path(), data.path(), &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = scheduled_times(&server.base, "every-fire").await;
    let latest = scheduled_times(&server.base, "latest-fire").await;
    server.kill();
    assert!(
        all.windows(2).all(|pair| pair[1] - pair[0] == 1000),
        "catch_up: all lost a fire: {all:?}"
    );
    assert!(all.len() >= 6, "{all:?}");
    let largest_gap = latest
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or(0);
    assert!(
        largest_gap >= 3000,
        "catch_up: latest ran the missed fires: {latest:?}"
    );
}

/// A paged contacts API whose data the test changes between runs: `GET /contacts?
/// updated_since=&page=` answers two contacts updated after `updated_since` per page,
/// oldest first, with `next_page` while more remain.
struct ContactsApi {
    base: String,
    contacts: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ContactsApi {
    async fn start(contacts: &[(&str, &str)]) -> Self {
        use axum::extract::{Query, State};
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};
        type Shared = (Arc<Mutex<Vec<(String, String)>>>, Arc<Mutex<Vec<String>>>);
        async fn page(
            State((contacts, requests)): State<Shared>,
            uri: axum::http::Uri,
            Query(query): Query<HashMap<String, String>>,
        ) -> axum::Json<Value> {
            requests.lock().unwrap().push(uri.to_string());
            let since = query.get("updated_since").cloned().unwrap_or_default();
            let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let mut changed: Vec<(String, String)> = contacts
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, updated)| *updated > since)
                .cloned()
                .collect();
            changed.sort_by(|a, b| a.1.cmp(&b.1));
            let items: Vec<Value> = changed
                .iter()
                .skip((page - 1) * 2)
                .take(2)
                .map(|(id, updated)| json!({"id": id, "updated_at": updated}))
                .collect();
            let more = changed.len() > page * 2;
            axum::Json(
                json!({"contacts": items, "next_page": if more { json!(page + 1) } else { Value::Null }}),
            )
        }
        let contacts = Arc::new(Mutex::new(
            contacts
                .iter()
                .map(|(id, at)| ((*id).to_owned(), (*at).to_owned()))
                .collect(),
        ));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/contacts", axum::routing::get(page))
            .with_state((Arc::clone(&contacts), Arc::clone(&requests)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            contacts,
            requests,
        }
    }

    fn set(&self, id: &str, updated_at: &str) {
        let mut contacts = self.contacts.lock().unwrap();
        contacts.retain(|(existing, _)| existing != id);
        contacts.push((id.to_owned(), updated_at.to_owned()));
    }
}

/// The ids of every event on `topic`, oldest first.
async fn event_ids(server: &TestServer, topic: &str) -> Vec<String> {
    let (status, page) = server
        .get_json(&format!("/api/v1/topics/{topic}/events?limit=500"))
        .await;
    assert_eq!(status, 200, "{page}");
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_import_pages_through_changes_and_publishes_each_once() {
    let api = ContactsApi::start(&[
        ("c1", "2026-11-01T10:00:00Z"),
        ("c2", "2026-11-01T11:00:00Z"),
        ("c3", "2026-11-01T12:00:00Z"),
        ("c4", "2026-11-01T13:00:00Z"),
        ("c5", "2026-11-01T14:00:00Z"),
    ])
    .await;
    let yaml = r#"
name: crm-poll
config:
  api: { default: "API" }
flows:
  poll:
    trigger: { schedule: { every: 1h } }
    steps:
      - id: cursor
        state: { get: since, default: '"1970-01-01T00:00:00Z"' }
      - id: fetch
        http:
          url: "${{ $config.api }}/contacts"
          query: { updated_since: "${{ $steps.cursor }}" }
          paginate:
            next: 'if .body.next_page then {query: {page: .body.next_page}} else null end'
            max_pages: 20
      - id: emit
        publish:
          topic: crm.contact.changed
          data: '$steps.fetch.pages[].body.contacts[]'
          id: '"\(.id)@\(.updated_at)"'
          state:
            set: since
            value: '[$steps.fetch.pages[].body.contacts[].updated_at] | max // $steps.cursor'
  peek:
    trigger: { schedule: { every: 1h } }
    steps:
      - id: fetch
        http:
          url: "${{ $config.api }}/contacts"
          paginate:
            next: 'if .body.next_page then {query: {page: .body.next_page}} else null end'
            max_pages: 2
"#
    .replace("API", &api.base);
    let server = TestServer::start_configured(&yaml, Default::default(), |_| {}).await;

    // The first run pages through all five (three pages) and moves the cursor with them.
    let first = run_schedule(&server.client, &server.base, "crm-poll/poll").await;
    let fetch = &first["steps"][1];
    assert_eq!(
        fetch["output"]["pages"].as_array().unwrap().len(),
        3,
        "{fetch:#}"
    );
    assert_eq!(fetch["output"]["next"], Value::Null);
    assert_eq!(
        event_ids(&server, "crm.contact.changed").await,
        [
            "c1@2026-11-01T10:00:00Z",
            "c2@2026-11-01T11:00:00Z",
            "c3@2026-11-01T12:00:00Z",
            "c4@2026-11-01T13:00:00Z",
            "c5@2026-11-01T14:00:00Z"
        ]
    );
    let requests = api.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[2].contains("page=3"), "{requests:?}");
    assert!(
        requests[2].contains("updated_since=1970-01-01T00%3A00%3A00Z"),
        "the later pages keep the first page's query: {requests:?}"
    );
    let emit = &first["steps"][2];
    assert_eq!(
        emit["output"]["state"],
        json!({"key": "since", "value": "2026-11-01T14:00:00Z"}),
        "{emit:#}"
    );

    // The API's data changes: c2 is updated, c6 is new. The next run sees only them.
    api.set("c2", "2026-11-02T09:00:00Z");
    api.set("c6", "2026-11-02T10:00:00Z");
    run_schedule(&server.client, &server.base, "crm-poll/poll").await;
    let ids = event_ids(&server, "crm.contact.changed").await;
    assert_eq!(
        ids[5..],
        ["c2@2026-11-02T09:00:00Z", "c6@2026-11-02T10:00:00Z"],
        "{ids:?}"
    );
    let requests = api.requests.lock().unwrap().clone();
    assert!(
        requests[3].contains("updated_since=2026-11-01T14%3A00%3A00Z"),
        "{requests:?}"
    );

    // Past `max_pages` the output names the request not sent.
    let peek = run_schedule(&server.client, &server.base, "crm-poll/peek").await;
    let output = &peek["steps"][0]["output"];
    assert_eq!(output["pages"].as_array().unwrap().len(), 2, "{output:#}");
    assert_eq!(output["next"], json!({"query": {"page": 3}}));

    // Nothing changed: a run publishes nothing and keeps the cursor.
    let idle = run_schedule(&server.client, &server.base, "crm-poll/poll").await;
    assert_eq!(event_ids(&server, "crm.contact.changed").await.len(), 7);
    assert_eq!(
        idle["steps"][2]["output"]["state"]["value"],
        "2026-11-02T10:00:00Z"
    );
    server.stop().await;
}
