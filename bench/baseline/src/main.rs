//! The benchmark baseline: the physical limit of this machine for the work a Switchboard
//! hook does, with nothing of Switchboard in it.
//!
//! - `baseline plain`: an axum server whose `POST /ingest` parses the JSON body and answers
//!   `202`.
//! - `baseline durable`: the same, but the body is appended to SQLite first, with the
//!   durability Switchboard's store uses (WAL, `synchronous = FULL`) and its group commit
//!   (one writer thread takes every waiting write into one transaction), and the answer
//!   comes after the commit.
//!
//! It prints `listening on http://<address>` once it listens, like `switchboard serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::{Parser, Subcommand};
use tokio::sync::oneshot;

/// The benchmark baseline.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Where to listen.
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
}

/// A write for the writer thread: the body, and where to say it is committed.
type Write = (Vec<u8>, oneshot::Sender<()>);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let writer = match &cli.mode {
        Mode::Plain => None,
        Mode::Durable { data } => Some(start_writer(data)?),
    };
    let app = axum::Router::new()
        .route("/ingest", post(ingest))
        .with_state(writer);
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn ingest(State(writer): State<Option<mpsc::Sender<Write>>>, body: Bytes) -> StatusCode {
    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return StatusCode::BAD_REQUEST;
    }
    let Some(writer) = writer else {
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
