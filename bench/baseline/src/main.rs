//! The benchmark baseline: the physical limit of this machine for the work a Switchboard
//! scenario does, with nothing of Switchboard in it.
//!
//! - `baseline plain`: an axum server whose `POST /ingest` parses the JSON body and answers
//!   `202`.
//! - `baseline durable`: the same, but the body is appended to SQLite first, with the
//!   durability Switchboard's store uses (WAL, `synchronous = FULL`) and its group commit
//!   (one writer thread takes every waiting write into one transaction), and the answer
//!   comes after the commit.
//! - `baseline relay --to URL`: the same as plain, but the body is first POSTed to `URL`
//!   with the HTTP client Switchboard uses: a webhook handed straight to its receiver.
//! - `baseline receive`: the receiver of the end-to-end and fan-out scenarios. It counts
//!   every POST, and the latency from the body's `sent_at_us` (microseconds since the
//!   Unix epoch) when it has one; `GET /stats` answers `{count, latencies_ms: {p50, p99}}`.
//! - `baseline send --to URL --count N --connections C`: N POSTs straight to `URL` with
//!   the HTTP client, C at a time; prints `{seconds, per_second}`.
//! - `baseline jaq --program P --input JSON --runs N`: runs a jq program N times in this
//!   process, parsing the input and printing the output each time; prints
//!   `{runs, per_run_us}`.
//!
//! The servers print `listening on http://<address>` once they listen, like
//! `switchboard serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The benchmark baseline.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Where the servers listen.
    #[arg(long, global = true, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Parse the JSON body and answer.
    Plain,
    /// Append the body to SQLite with group commit, then answer.
    Durable {
        /// The folder of the database.
        #[arg(long)]
        data: PathBuf,
    },
    /// POST the body to `to`, then answer.
    Relay {
        /// The receiver's URL.
        #[arg(long)]
        to: String,
    },
    /// Count what arrives, and how long it took to arrive.
    Receive,
    /// Send POSTs straight to a URL and say how fast they went.
    Send {
        /// The receiver's URL.
        #[arg(long)]
        to: String,
        /// How many requests.
        #[arg(long)]
        count: usize,
        /// How many at a time.
        #[arg(long, default_value_t = 16)]
        connections: usize,
    },
    /// Run a jq program over an input, many times, in this process.
    Jaq {
        /// The program.
        #[arg(long)]
        program: String,
        /// The input, as JSON text.
        #[arg(long)]
        input: String,
        /// How many runs.
        #[arg(long, default_value_t = 10_000)]
        runs: u32,
    },
}

/// What the handlers share: where durable writes go, and the client of the relay.
#[derive(Clone, Default)]
struct Ingest {
    writer: Option<mpsc::Sender<Write>>,
    relay: Option<(reqwest::Client, String)>,
}

/// A write for the writer thread: the body, and where to say it is committed.
type Write = (Vec<u8>, oneshot::Sender<()>);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let app = match cli.mode {
        Mode::Plain => ingest_app(Ingest::default()),
        Mode::Durable { data } => ingest_app(Ingest {
            writer: Some(start_writer(&data)?),
            relay: None,
        }),
        Mode::Relay { to } => ingest_app(Ingest {
            writer: None,
            relay: Some((reqwest::Client::new(), to)),
        }),
        Mode::Receive => axum::Router::new()
            .route("/stats", get(stats))
            .fallback(post(receive))
            .with_state(Arc::new(Received::default())),
        Mode::Send {
            to,
            count,
            connections,
        } => return send(&to, count, connections).await,
        Mode::Jaq {
            program,
            input,
            runs,
        } => return jaq(&program, &input, runs),
    };
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

fn ingest_app(state: Ingest) -> axum::Router {
    axum::Router::new()
        .route("/ingest", post(ingest))
        .with_state(state)
}

async fn ingest(State(state): State<Ingest>, body: Bytes) -> StatusCode {
    if serde_json::from_slice::<Value>(&body).is_err() {
        return StatusCode::BAD_REQUEST;
    }
    if let Some((client, to)) = &state.relay {
        let sent = client
            .post(to)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if !sent.is_ok_and(|answer| answer.status().is_success()) {
            return StatusCode::BAD_GATEWAY;
        }
    }
    let Some(writer) = &state.writer else {
        return StatusCode::ACCEPTED;
    };
    let (done, committed) = oneshot::channel();
    if writer.send((body.to_vec(), done)).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match committed.await {
        Ok(()) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Opens the database and starts the writer thread.
fn start_writer(data: &Path) -> anyhow::Result<mpsc::Sender<Write>> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot make {}", data.display()))?;
    let connection = rusqlite::Connection::open(data.join("baseline.sqlite"))?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);",
    )?;
    let (sender, receiver) = mpsc::channel::<Write>();
    std::thread::Builder::new()
        .name(String::from("writer"))
        .spawn(move || write_loop(&connection, &receiver))?;
    Ok(sender)
}

/// Takes every waiting write into one transaction, commits, then answers them all.
fn write_loop(connection: &rusqlite::Connection, receiver: &mpsc::Receiver<Write>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter());
        let committed = (|| -> rusqlite::Result<()> {
            connection.execute_batch("BEGIN")?;
            let mut insert = connection.prepare_cached("INSERT INTO bodies (body) VALUES (?1)")?;
            for (body, _) in &batch {
                insert.execute([body])?;
            }
            drop(insert);
            connection.execute_batch("COMMIT")
        })();
        if let Err(error) = committed {
            eprintln!("commit failed: {error}");
            let _ = connection.execute_batch("ROLLBACK");
            continue;
        }
        for (_, done) in batch {
            let _ = done.send(());
        }
    }
}

/// What the receiver has seen.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    /// Milliseconds from `sent_at_us` to arrival, for the bodies that had one.
    latencies_ms: Mutex<Vec<f64>>,
}

async fn receive(State(received): State<Arc<Received>>, body: Bytes) -> StatusCode {
    received.count.fetch_add(1, Ordering::Relaxed);
    let sent_at = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body["sent_at_us"].as_u64());
    if let Some(sent_at) = sent_at {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        let latency = now.saturating_sub(u128::from(sent_at)) as f64 / 1000.0;
        received
            .latencies_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(latency);
    }
    StatusCode::OK
}

async fn stats(State(received): State<Arc<Received>>) -> axum::Json<Value> {
    let mut latencies = received
        .latencies_ms
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        let at = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(at).copied()
    };
    axum::Json(json!({
        "count": received.count.load(Ordering::Relaxed),
        "latencies_ms": {"count": latencies.len(), "p50": percentile(0.5), "p99": percentile(0.99)},
    }))
}

/// Sends `count` POSTs to `to`, `connections` at a time, and prints how fast they went.
async fn send(to: &str, count: usize, connections: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (client, next, to) = (client.clone(), Arc::clone(&next), to.to_owned());
        senders.spawn(async move {
            while usize::try_from(next.fetch_add(1, Ordering::Relaxed)).unwrap_or(usize::MAX)
                < count
            {
                let answer = client
                    .post(&to)
                    .header("content-type", "application/json")
                    .body(r#"{"type":"bench.sent","data":{"n":1}}"#)
                    .send()
                    .await?;
                if !answer.status().is_success() {
                    return Err(anyhow!("{to} answered {}", answer.status()));
                }
            }
            Ok(())
        });
    }
    while let Some(sent) = senders.join_next().await {
        sent??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"seconds": seconds, "per_second": count as f64 / seconds})
    );
    Ok(())
}

/// Runs `program` over `input` `runs` times, as a bare jaq embedding does it: parse the
/// input, run, print the output.
fn jaq(program: &str, input: &str, runs: u32) -> anyhow::Result<()> {
    use jaq_core::load::{Arena, File, Loader};
    use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
    use jaq_json::Val;

    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: program,
                path: (),
            },
        )
        .map_err(|errors| anyhow!("the program does not load: {errors:?}"))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| anyhow!("the program does not compile: {errors:?}"))?;
    let started = Instant::now();
    let mut printed = 0;
    for _ in 0..runs {
        let value = jaq_json::read::parse_single(input.as_bytes())
            .map_err(|error| anyhow!("the input is not JSON: {error}"))?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
        for output in filter.id.run((ctx, value)).map(unwrap_valr) {
            let output = output.map_err(|error| anyhow!("the program failed: {error}"))?;
            printed += output.to_string().len();
        }
    }
    let elapsed = started.elapsed();
    let per_run = elapsed / runs.max(1);
    println!(
        "{}",
        json!({"runs": runs, "per_run_us": per_run.as_secs_f64() * 1e6, "output_bytes": printed})
    );
    Ok(())
}
