//! `serve --watch`: the project's files are looked at every `interval`, and when one
//! changed (or appeared, or went away) the project is loaded again. A project without
//! problems replaces the running one ([`Engine::reload`]) without a restart and without
//! dropping queued work; one with problems is reported, each at `file:line:column`, and
//! the running version stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchboard_engine::Engine;
use switchboard_project::ConfigValue;
use tokio_util::sync::CancellationToken;

/// What to watch.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The files and folders the project was loaded from.
    pub paths: Vec<PathBuf>,
    /// The `--config` values to set over each version's defaults.
    pub config: Vec<ConfigValue>,
    /// How often the files are looked at.
    pub interval: Duration,
}

/// The state of the project's files: each one's modification time and length.
type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    switchboard_project::project_files(paths)
        .into_iter()
        .map(|file| {
            let seen = std::fs::metadata(&file)
                .ok()
                .and_then(|metadata| Some((metadata.modified().ok()?, metadata.len())));
            (file, seen)
        })
        .collect()
}

/// Reloads the project whenever its files change, until `stopping`.
pub(crate) async fn run(
    engine: Arc<Engine>,
    watch: Watch,
    base_url: String,
    stopping: CancellationToken,
) {
    let mut seen = fingerprint(&watch.paths);
    let mut tick = tokio::time::interval(watch.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = fingerprint(&watch.paths);
        if now == seen {
            continue;
        }
        seen = now;
        let loaded = switchboard_project::load(&watch.paths)
            .map_err(|problems| problems.to_string())
            .and_then(|mut project| {
                project
                    .set_config(&watch.config)
                    .map(|()| project)
                    .map_err(|problem| format!("--config {problem}"))
            });
        match loaded {
            Ok(project) => {
                let integrations = project.integrations.len();
                match engine.reload(project, &base_url).await {
                    Ok(deployed) => {
                        engine.metrics().project_reloaded("applied");
                        tracing::info!(
                            integrations,
                            changed = deployed.len(),
                            "Reloaded the project."
                        );
                    }
                    Err(error) => {
                        engine.metrics().project_reloaded("applied");
                        tracing::error!(%error, "Reloaded the project, but could not record its deployment; it is tried again at the next change or start.");
                    }
                }
            }
            Err(problems) => {
                engine.metrics().project_reloaded("refused");
                for problem in problems.lines() {
                    tracing::error!(%problem, "The changed project has a problem; the running version stays.");
                }
            }
        }
    }
}
