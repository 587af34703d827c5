//! The `files` trigger: new files in a folder start executions, each file once.
//!
//! Every `every`, the watcher lists each watched folder and:
//!
//! 1. finishes the files whose execution ended: after success the file moves to
//!    `move_to` (under a new name when one of its name is there already) or is deleted;
//!    after a failure it moves to `failed_to`, or stays where it is, not taken again
//!    until it changes. Then its claim goes. A crash between the move and the release
//!    is harmless: a claim whose file is gone is released on the next look.
//! 2. takes the new files whose size and modification time have not changed for `every`
//!    (a file still being written is left until it holds still): the claim (flow,
//!    path) and the execution are written in one transaction, so a crash, a restart or
//!    a second process never takes a file twice, and a file is never lost: it stays in
//!    the folder until its execution ended.
//!
//! An execution of a `files` flow that ends wakes the watcher, so its file moves on at
//! once rather than at the next look.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_core::Timestamp;
use switchboard_files::{FileInfo, FilesError};
use switchboard_project::{AfterFile, FilesTrigger, Flow, Trigger};
use switchboard_store::ExecutionStatus;
use switchboard_store::claims::FileClaim;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// A file as last seen: its size and modification time, and since when it has had them.
type Seen = HashMap<(String, String, String), ((u64, Timestamp), Instant)>;

/// Watches every `files` flow's folder until shutdown (see the module docs).
pub(crate) async fn watch(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut seen = Seen::new();
    let mut due: HashMap<(String, String), Instant> = HashMap::new();
    loop {
        let project = engine.project();
        let flows: Vec<(Arc<Flow>, FilesTrigger)> = project
            .integrations
            .values()
            .flat_map(|integration| integration.flows.values())
            .filter_map(|flow| match &flow.trigger {
                Trigger::Files(files) => Some((Arc::clone(flow), (**files).clone())),
                _ => None,
            })
            .collect();
        let now = Instant::now();
        let mut next = now + Duration::from_secs(60);
        for (flow, trigger) in &flows {
            let key = (flow.integration.clone(), flow.name.clone());
            let at = due.get(&key).copied().unwrap_or(now);
            if at <= now {
                look(&engine, flow, trigger, &mut seen).await;
                due.insert(key, now + trigger.every);
                next = next.min(now + trigger.every);
            } else {
                next = next.min(at);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = engine.look_at_files.notified() => {
                // Finish what ended now: look at every folder again.
                due.clear();
            }
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// One look at a flow's folder.
async fn look(engine: &Engine, flow: &Flow, trigger: &FilesTrigger, seen: &mut Seen) {
    let (integration, name) = (flow.integration.as_str(), flow.name.as_str());
    let listed = match engine
        .files
        .list(&trigger.path, trigger.pattern.as_deref())
        .await
    {
        Ok(listed) => listed,
        Err(FilesError::NotFound(_)) => Vec::new(),
        Err(error) => {
            tracing::warn!(integration, flow = name, %error, "Cannot list the watched folder.");
            return;
        }
    };
    let claims = match engine.store.file_claims(integration, name).await {
        Ok(claims) => claims,
        Err(error) => {
            tracing::error!(integration, flow = name, %error, "Cannot read the files taken.");
            return;
        }
    };
    // Paths with a claim: held by their execution, or finished just now (moved away,
    // or changed after a failure and taken again only once they hold still).
    let mut claimed: HashSet<&str> = HashSet::new();
    for claim in &claims {
        let file = listed.iter().find(|file| file.path == claim.path);
        if finish(engine, flow, trigger, claim, file).await {
            seen.remove(&(integration.to_owned(), name.to_owned(), claim.path.clone()));
        }
        claimed.insert(claim.path.as_str());
    }
    seen.retain(|(i, f, path), _| {
        i != integration || f != name || listed.iter().any(|file| &file.path == path)
    });
    for file in &listed {
        if claimed.contains(file.path.as_str()) {
            continue;
        }
        let key = (integration.to_owned(), name.to_owned(), file.path.clone());
        let state = (file.size, file.modified_at);
        let since = match seen.get(&key) {
            Some((before, since)) if *before == state => *since,
            _ => {
                // New, or changed since: taken once it holds still for `every`.
                seen.insert(key, (state, Instant::now()));
                continue;
            }
        };
        if since.elapsed() >= trigger.every {
            take(engine, flow, file).await;
        }
    }
}

/// Takes one stable file: its claim and its execution, in one transaction.
async fn take(engine: &Engine, flow: &Flow, file: &FileInfo) {
    let data = file.to_json();
    let mut trigger = data.clone();
    trigger["kind"] = json!("files");
    let execution = engine.prepare_or_plain(flow, trigger, data);
    match engine
        .store
        .claim_file(&file.path, file.size, file.modified_at, execution)
        .await
    {
        Ok(true) => {
            tracing::info!(integration = %flow.integration, flow = %flow.name, path = %file.path, "Took a file.");
            engine.metrics.files_taken(&flow.integration, 1);
            engine.wake.notify_one();
        }
        Ok(false) => {}
        Err(error) => {
            tracing::error!(integration = %flow.integration, flow = %flow.name, path = %file.path, %error, "Cannot take a file.");
        }
    }
}

/// Moves on the file of a claim whose execution ended, and releases the claim; `true`
/// when the claim is gone (or its file changed since a failure and may be taken again).
async fn finish(
    engine: &Engine,
    flow: &Flow,
    trigger: &FilesTrigger,
    claim: &FileClaim,
    file: Option<&FileInfo>,
) -> bool {
    let (integration, name) = (flow.integration.as_str(), flow.name.as_str());
    let succeeded = match claim.status {
        Some(ExecutionStatus::Succeeded) => true,
        Some(ExecutionStatus::Failed | ExecutionStatus::Cancelled) | None => false,
        Some(_) => return false,
    };
    let moved = match (file, succeeded) {
        // Moved or deleted before a crash kept the claim.
        (None, _) => Ok(()),
        (Some(file), true) => match &trigger.after {
            AfterFile::Move(folder) => move_into(engine, file, folder, claim).await,
            AfterFile::Delete => engine.files.delete(&file.path).await.map(|_| ()),
        },
        (Some(file), false) => match &trigger.failed_to {
            Some(folder) => move_into(engine, file, folder, claim).await,
            // It stays, not taken again until it changes.
            None if (file.size, file.modified_at) == (claim.size, claim.modified_at) => {
                return false;
            }
            None => Ok(()),
        },
    };
    if let Err(error) = moved {
        tracing::warn!(integration, flow = name, path = %claim.path, %error, "Cannot move on a processed file.");
        return false;
    }
    match engine
        .store
        .release_file(integration, name, &claim.path)
        .await
    {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(integration, flow = name, path = %claim.path, %error, "Cannot release a processed file.");
            false
        }
    }
}

/// Moves `file` into `folder`, under its name, or when that is taken, under its name
/// with the execution's id before the extension.
async fn move_into(
    engine: &Engine,
    file: &FileInfo,
    folder: &str,
    claim: &FileClaim,
) -> Result<(), FilesError> {
    let mut target = format!("{folder}/{}", file.name);
    if engine.files.stat(&target).await?.is_some() {
        let (stem, extension) = match file.name.rsplit_once('.') {
            Some((stem, extension)) => (stem, format!(".{extension}")),
            None => (file.name.as_str(), String::new()),
        };
        target = format!("{folder}/{stem}-{}{extension}", claim.execution_id);
    }
    engine.files.rename(&file.path, &target).await
}
