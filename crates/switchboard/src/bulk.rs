//! `switchboard executions retry|replay`: starts a bulk job on a running server, shows
//! its progress as a bar, and prints a summary.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Map, Value, json};
use switchboard_core::{HumanDuration, Timestamp};

/// Which executions, and on which server.
#[derive(Debug, clap::Args)]
pub struct BulkArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "SWITCHBOARD_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Only this integration's executions.
    #[arg(long)]
    integration: Option<String>,
    /// Only this flow's executions.
    #[arg(long)]
    flow: Option<String>,
    /// Only executions in this state.
    #[arg(long)]
    status: Option<String>,
    /// Only executions accepted within this long (`2h`, `7d`).
    #[arg(long)]
    since: Option<HumanDuration>,
    /// Only executions whose error has this code.
    #[arg(long)]
    error_code: Option<String>,
}

/// What to do to each execution.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Resume failed ones from their failed step.
    Retry,
    /// Start new executions with the same triggers.
    Replay,
}

impl Action {
    fn path(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Replay => "replay",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Self::Retry => "retried",
            Self::Replay => "replayed",
        }
    }
}

/// Runs the job and waits for its end.
pub async fn run(action: Action, args: BulkArgs) -> anyhow::Result<ExitCode> {
    let mut filter = Map::new();
    for (name, value) in [
        ("integration", args.integration),
        ("flow", args.flow),
        ("status", args.status),
        ("error_code", args.error_code),
    ] {
        if let Some(value) = value {
            filter.insert(name.to_owned(), Value::String(value));
        }
    }
    if let Some(since) = args.since {
        let since = Timestamp(
            Timestamp::now().millis() - i64::try_from(since.0.as_millis()).unwrap_or(i64::MAX),
        );
        filter.insert("since".to_owned(), json!(since));
    }
    let base = args.server.trim_end_matches('/');
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/api/v1/executions/{}", action.path()))
        .json(&filter)
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {base}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .context("the server's answer is not JSON")?;
    if status != reqwest::StatusCode::ACCEPTED {
        anyhow::bail!(
            "the server refused the job ({status}): {}",
            body["error"]["message"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    let id = body["id"]
        .as_str()
        .context("the server's answer names no job")?
        .to_owned();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{} executions", action.past()));
    let job = loop {
        let job: Value = client
            .get(format!("{base}/api/v1/jobs/{id}"))
            .send()
            .await
            .with_context(|| format!("cannot read job {id}"))?
            .json()
            .await
            .context("the server's answer is not JSON")?;
        if let Some(total) = job["total"].as_u64() {
            bar.set_length(total);
        }
        bar.set_position(job["processed"].as_u64().unwrap_or(0));
        if job["state"] == "done" {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish_and_clear();
    let count = |field: &str| job[field].as_u64().unwrap_or(0);
    println!(
        "{} {} of {} executions ({} skipped, {} failed); job {id}",
        action.past(),
        count("applied"),
        count("total"),
        count("skipped"),
        count("failed"),
    );
    Ok(if count("failed") == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
