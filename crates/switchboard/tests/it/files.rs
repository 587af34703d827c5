//! The `files` step through the real server: writing CSV, NDJSON and XML reports,
//! reading them back, listing, moving and deleting, with every path confined to the
//! file roots and malformed files named by line and column.

use serde_json::{Value, json};

use std::time::Duration;

use crate::support::{ServeProcess, TestServer, executions_of, wait_for_file};

const PROJECT: &str = r#"
name: reports
flows:
  export:
    trigger: { webhook: {} }
    steps:
      - id: rows
        transform: '[.orders[] | {id, customer, total}]'
      - id: csv
        files:
          write: 'outbox/orders-${{ .date }}.csv'
          data: '$steps.rows'
          csv: { columns: [id, customer, total] }
      - id: ndjson
        files: { write: 'outbox/orders-${{ .date }}.ndjson', data: '$steps.rows' }
      - id: log
        files: { write: 'outbox/export.ndjson', data: '{date: .date, orders: ($steps.rows | length)}', append: true }
      - id: xml
        files: { write: 'outbox/orders.xml', data: '{orders: {"@date": .date, order: $steps.rows}}' }
      - id: back
        files: { read: 'outbox/orders-${{ .date }}.csv' }
      - id: xml-back
        files: { read: 'outbox/orders.xml' }
      - id: listed
        files: { list: outbox, pattern: '*.csv' }
      - id: archive
        files: { move: 'outbox/orders-${{ .date }}.csv', to: 'archive/orders-${{ .date }}.csv' }
      - id: drop
        files: { delete: 'outbox/orders.xml' }
  read:
    trigger: { webhook: {} }
    steps:
      - id: file
        files: { read: '${{ .path }}', format: csv }
"#;

async fn start() -> (TestServer, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().to_owned();
    let server = TestServer::start_configured(PROJECT, Default::default(), move |config| {
        config.file_roots = vec![folder];
    })
    .await;
    (server, root)
}

fn step<'a>(execution: &'a Value, id: &str) -> &'a Value {
    execution["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}: {execution:#}"))
}

#[tokio::test]
async fn a_report_is_written_read_listed_moved_and_deleted() {
    let (server, root) = start().await;
    let orders = json!({"date": "2026-11-23", "orders": [
        {"id": "o-1", "customer": "Ada, Countess", "total": 12.5},
        {"id": "o-2", "customer": "Grace", "total": 3}
    ]});
    let execution = server.run_hook("/hooks/reports/export", &orders).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    assert_eq!(
        step(&execution, "csv")["output"],
        json!({"path": "outbox/orders-2026-11-23.csv", "size": 55, "rows": 2})
    );
    let archived = root.path().join("archive/orders-2026-11-23.csv");
    assert_eq!(
        std::fs::read_to_string(&archived).unwrap(),
        "id,customer,total\no-1,\"Ada, Countess\",12.5\no-2,Grace,3\n"
    );
    assert!(!root.path().join("outbox/orders-2026-11-23.csv").exists());
    assert_eq!(
        std::fs::read_to_string(root.path().join("outbox/orders-2026-11-23.ndjson")).unwrap(),
        "{\"customer\":\"Ada, Countess\",\"id\":\"o-1\",\"total\":12.5}\n{\"customer\":\"Grace\",\"id\":\"o-2\",\"total\":3}\n"
    );
    assert_eq!(
        step(&execution, "back")["output"],
        json!([
            {"id": "o-1", "customer": "Ada, Countess", "total": "12.5"},
            {"id": "o-2", "customer": "Grace", "total": "3"}
        ])
    );
    assert_eq!(
        step(&execution, "xml-back")["output"]["orders"]["order"][1]["customer"],
        "Grace"
    );
    assert_eq!(
        step(&execution, "xml-back")["output"]["orders"]["@date"],
        "2026-11-23"
    );
    let listed = step(&execution, "listed")["output"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "orders-2026-11-23.csv");
    assert_eq!(listed[0]["size"], 55);
    assert_eq!(step(&execution, "drop")["output"]["deleted"], true);
    assert!(!root.path().join("outbox/orders.xml").exists());

    // Appending adds a line per run; the report itself is replaced.
    let again = server.run_hook("/hooks/reports/export", &orders).await;
    assert_eq!(again["status"], "succeeded", "{again:#}");
    let log = std::fs::read_to_string(root.path().join("outbox/export.ndjson")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    server.stop().await;
}

#[tokio::test]
async fn paths_outside_the_roots_and_malformed_files_fail_clearly() {
    let (server, root) = start().await;
    for escaping in ["../outside.csv", "inbox/../../outside.csv", "/etc/passwd"] {
        let execution = server
            .run_hook("/hooks/reports/read", &json!({"path": escaping}))
            .await;
        assert_eq!(execution["status"], "failed", "{execution:#}");
        assert_eq!(execution["error"]["code"], "invalid_value");
        let message = execution["error"]["message"].as_str().unwrap();
        assert!(message.contains("outside the file roots"), "{message}");
    }
    std::fs::create_dir_all(root.path().join("inbox")).unwrap();
    std::fs::write(
        root.path().join("inbox/broken.csv"),
        "id,name\n1,Ada\n2,Grace,extra\n",
    )
    .unwrap();
    let execution = server
        .run_hook("/hooks/reports/read", &json!({"path": "inbox/broken.csv"}))
        .await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(
        execution["error"]["message"],
        "`inbox/broken.csv`: csv at line 3, column 3: the row has 3 fields where the first row has 2"
    );
    let missing = server
        .run_hook("/hooks/reports/read", &json!({"path": "inbox/none.csv"}))
        .await;
    assert_eq!(
        missing["error"]["message"],
        "`inbox/none.csv` does not exist"
    );
    server.stop().await;
}

const INBOX: &str = r#"
name: imports
flows:
  orders:
    trigger: { files: { path: inbox, pattern: '*.csv', every: 1s, failed_to: failed } }
    steps:
      - id: rows
        files: { read: '${{ .path }}' }
      - id: check
        when: 'any($steps.rows[]; .email == "")'
        fail: { message: '"a row has no email"', code: '"missing_email"' }
      - id: count
        transform: '{file: .name, rows: ($steps.rows | length)}'
"#;

#[tokio::test]
async fn each_new_file_starts_one_execution_once_it_is_stable_then_moves_on() {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().to_owned();
    let server = TestServer::start_configured(INBOX, Default::default(), move |config| {
        config.file_roots = vec![folder];
    })
    .await;
    let inbox = root.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        inbox.join("good.csv"),
        "id,email\n1,ada@example.com\n2,grace@example.com\n",
    )
    .unwrap();
    std::fs::write(inbox.join("bad.csv"), "id,email\n1,\n").unwrap();
    std::fs::write(inbox.join("notes.txt"), "not for this flow").unwrap();
    // A file still being written: it grows for a while, and is taken once it holds still.
    let growing = inbox.join("growing.csv");
    std::fs::write(&growing, "id,email\n").unwrap();
    for n in 0..12 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&growing)
            .unwrap();
        writeln!(file, "{n},user{n}@example.com").unwrap();
    }
    wait_for_file(
        &root.path().join("processed/good.csv"),
        Duration::from_secs(20),
    )
    .await;
    wait_for_file(&root.path().join("failed/bad.csv"), Duration::from_secs(20)).await;
    wait_for_file(
        &root.path().join("processed/growing.csv"),
        Duration::from_secs(20),
    )
    .await;
    assert!(
        inbox.join("notes.txt").exists(),
        "a name the pattern leaves out stays"
    );
    assert!(!inbox.join("good.csv").exists());

    let executions = executions_of(&server.client, &server.base, "orders").await;
    assert_eq!(
        executions.len(),
        3,
        "one execution per file: {executions:#?}"
    );
    let by_name = |name: &str| {
        executions
            .iter()
            .find(|execution| execution["input"]["name"] == name)
            .unwrap_or_else(|| panic!("no execution for {name}"))
    };
    let good = by_name("good.csv");
    assert_eq!(good["status"], "succeeded");
    assert_eq!(good["trigger"]["kind"], "files");
    assert_eq!(good["input"]["path"], "inbox/good.csv");
    assert_eq!(good["input"]["size"], 47);
    assert!(good["input"]["modified_at"].is_string());
    assert_eq!(good["output"], json!({"file": "good.csv", "rows": 2}));
    let bad = by_name("bad.csv");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["error"]["code"], "missing_email");
    // Taken only once it stopped growing: every row was there.
    assert_eq!(by_name("growing.csv")["output"]["rows"], 12);

    // A file of the same name dropped again later is a new file.
    std::fs::write(inbox.join("good.csv"), "id,email\n3,alan@example.com\n").unwrap();
    for _ in 0..300 {
        if executions_of(&server.client, &server.base, "orders")
            .await
            .len()
            == 4
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let executions = executions_of(&server.client, &server.base, "orders").await;
    assert_eq!(executions.len(), 4);
    for _ in 0..300 {
        if std::fs::read_dir(root.path().join("processed"))
            .unwrap()
            .count()
            == 3
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The earlier good.csv is kept: the new one is stored beside it under its execution id.
    let processed: Vec<String> = std::fs::read_dir(root.path().join("processed"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(processed.len(), 3, "{processed:?}");
    assert!(
        processed.iter().any(|name| name.starts_with("good-exe_")),
        "{processed:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_processed_once_across_a_sigkill() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("imports.yaml"),
        r#"
name: imports
flows:
  slow:
    trigger: { files: { path: inbox, every: 1s, after: delete } }
    steps:
      - id: rows
        files: { read: '${{ .path }}', format: text }
      - id: wait
        sleep: 2s
      - id: done
        files: { write: 'done/${{ .name }}.${{ $execution.id }}', data: '$steps.rows', format: text }
"#,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let inbox = root.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for n in 0..5 {
        std::fs::write(inbox.join(format!("file-{n}.txt")), format!("file {n}\n")).unwrap();
    }
    let roots = root.path().to_str().unwrap().to_owned();
    let extra = ["--files-root", roots.as_str()];
    let server = ServeProcess::start(folder.path(), data.path(), &extra);
    // Killed while the files are taken and their executions sleep.
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let page: Value = client
            .get(format!("{}/api/v1/executions?flow=slow", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["items"].as_array().unwrap().len() == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.kill();
    assert_eq!(
        std::fs::read_dir(&inbox).unwrap().count(),
        5,
        "nothing is lost"
    );
    let server = ServeProcess::start(folder.path(), data.path(), &extra);
    for _ in 0..300 {
        if std::fs::read_dir(&inbox).unwrap().count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read_dir(&inbox).unwrap().count(),
        0,
        "every file was processed"
    );
    let executions = executions_of(&client, &server.base, "slow").await;
    server.kill();
    assert_eq!(executions.len(), 5, "each file once: {executions:#?}");
    assert!(
        executions
            .iter()
            .all(|execution| execution["status"] == "succeeded")
    );
    let done: Vec<String> = std::fs::read_dir(root.path().join("done"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(done.len(), 5, "{done:?}");
}

const ROWS: &str = r#"
name: bulk
flows:
  load:
    trigger: { webhook: {} }
    steps:
      - id: each
        for_each:
          file: { path: '${{ .path }}', batch: 500 }
          steps:
            - id: total
              transform: '{batch: $index, rows: ($item | length), sum: ([$item[].amount | tonumber] | add)}'
            - id: out
              files: { write: out/batches.ndjson, data: '$steps.total', append: true }
  whole:
    trigger: { webhook: {} }
    steps:
      - id: all
        files: { read: '${{ .path }}' }
"#;

#[tokio::test]
async fn a_file_larger_than_a_read_takes_is_processed_row_by_row_in_batches() {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().to_owned();
    let server = TestServer::start_configured(ROWS, Default::default(), move |config| {
        config.file_roots = vec![folder];
        config.max_file_bytes = 64 * 1024;
    })
    .await;
    let mut csv = String::from("id,amount\n");
    for n in 0..20_000 {
        csv.push_str(&format!("{n},{}\n", n % 7));
    }
    assert!(csv.len() > 2 * 64 * 1024);
    std::fs::write(root.path().join("big.csv"), &csv).unwrap();

    // Read whole, it is refused: it is larger than a read takes.
    let whole = server
        .run_hook("/hooks/bulk/whole", &json!({"path": "big.csv"}))
        .await;
    assert_eq!(whole["status"], "failed");
    let message = whole["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("more than the 65536 bytes a read takes"),
        "{message}"
    );

    // Streamed, every row goes through, batch by batch.
    let execution = server
        .run_hook("/hooks/bulk/load", &json!({"path": "big.csv"}))
        .await;
    assert_eq!(execution["status"], "succeeded", "{:#}", execution["error"]);
    assert_eq!(
        step(&execution, "each")["output"],
        json!({"batches": 40, "rows": 20000})
    );
    let batches = std::fs::read_to_string(root.path().join("out/batches.ndjson")).unwrap();
    let lines: Vec<Value> = batches
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 40);
    let rows: u64 = lines
        .iter()
        .map(|line| line["rows"].as_u64().unwrap())
        .sum();
    let sum: u64 = lines.iter().map(|line| line["sum"].as_u64().unwrap()).sum();
    assert_eq!(rows, 20_000);
    assert_eq!(sum, (0..20_000u64).map(|n| n % 7).sum::<u64>());

    // A malformed row fails the step with its line and column, after the rows before it.
    csv.insert_str(csv.find("1234,").unwrap(), "oops,1,extra\n");
    std::fs::write(root.path().join("broken.csv"), &csv).unwrap();
    let broken = server
        .run_hook("/hooks/bulk/load", &json!({"path": "broken.csv"}))
        .await;
    assert_eq!(broken["status"], "failed");
    assert_eq!(
        broken["error"]["message"],
        "`broken.csv`: csv at line 1236, column 3: the row has 3 fields where the first row has 2"
    );
    server.stop().await;
}
