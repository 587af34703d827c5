//! Deployments and reloads.
//!
//! [`Engine::deploy`] compares the project with the versions the store last recorded,
//! and in one transaction records the changes and queues the `deploy` flows they start:
//! `deployed` for an integration seen for the first time, `updated` for one whose file
//! or config values changed, `removed` for one that is gone. A removed integration's
//! flows come from its text kept in the store, so its `removed` flows can still run
//! (and delete what its `deployed` flows registered). A restart deploys nothing twice.
//!
//! [`Engine::reload`] swaps the project while the engine runs: running executions finish
//! on the version they started with, queued ones run on the new one, and a flow a reload
//! removed still runs what was queued for it, on its previous version.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use switchboard_project::{DeployEvent, Integration, Project, Trigger};
use switchboard_store::StoreError;
use switchboard_store::deploy::{Deployment, DeploymentChange};

use crate::Engine;

/// What a deployment did to one integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The integration.
    pub integration: String,
    /// What happened to it.
    pub event: &'static str,
    /// How many `deploy` executions it queued.
    pub executions: usize,
}

impl Engine {
    /// Records what changed since the last deployment and queues the `deploy` flows it
    /// starts. `base_url` is where this server is reached from outside, for the hook URLs
    /// the flows get.
    pub async fn deploy(&self, base_url: &str) -> Result<Vec<Deployed>, StoreError> {
        let recorded = self.store.deployments().await?;
        let project = self.project();
        let mut changes = Vec::new();
        let mut executions = Vec::new();
        let mut report = Vec::new();
        let mut removed = Vec::new();
        for integration in project.integrations.values() {
            let fingerprint = integration.fingerprint();
            let event = match recorded
                .iter()
                .find(|deployment| deployment.integration == integration.name)
            {
                None => DeployEvent::Deployed,
                Some(deployment) if deployment.fingerprint != fingerprint => DeployEvent::Updated,
                Some(_) => continue,
            };
            changes.push(DeploymentChange::Deployed(Deployment {
                integration: integration.name.clone(),
                fingerprint,
                source: integration.source.clone(),
            }));
            let queued = self.deploy_executions(integration, event, base_url);
            report.push(Deployed {
                integration: integration.name.clone(),
                event: event.as_str(),
                executions: queued.len(),
            });
            executions.extend(queued);
        }
        for deployment in &recorded {
            if project.integrations.contains_key(&deployment.integration) {
                continue;
            }
            changes.push(DeploymentChange::Removed(deployment.integration.clone()));
            let file = format!("{} (removed, as last deployed)", deployment.integration);
            let queued = match switchboard_project::compile(Path::new(&file), &deployment.source) {
                Ok(integration) => {
                    let queued =
                        self.deploy_executions(&integration, DeployEvent::Removed, base_url);
                    removed.push(Arc::new(integration));
                    queued
                }
                Err(problems) => {
                    tracing::warn!(integration = %deployment.integration, %problems, "The removed integration's last version no longer compiles; its removed flows do not run.");
                    Vec::new()
                }
            };
            report.push(Deployed {
                integration: deployment.integration.clone(),
                event: DeployEvent::Removed.as_str(),
                executions: queued.len(),
            });
            executions.extend(queued);
        }
        if changes.is_empty() {
            return Ok(report);
        }
        if !removed.is_empty() {
            // Their flows must be runnable before their executions can be leased.
            self.swap(|current| {
                let mut next = clone_project(current);
                for integration in &removed {
                    next.previous
                        .insert(integration.name.clone(), Arc::clone(integration));
                }
                next
            });
        }
        let queued = !executions.is_empty();
        self.store.deploy(changes, executions).await?;
        for deployed in &report {
            tracing::info!(integration = %deployed.integration, event = deployed.event, executions = deployed.executions, "Deployed.");
        }
        if queued {
            self.wake.notify_one();
        }
        Ok(report)
    }

    /// Runs `project` from now on, then deploys it (see the module docs).
    pub async fn reload(
        &self,
        project: Project,
        base_url: &str,
    ) -> Result<Vec<Deployed>, StoreError> {
        self.swap(|current| {
            let mut next = project;
            next.previous = current.previous.clone();
            for (name, old) in &current.integrations {
                let same = next
                    .integrations
                    .get(name)
                    .is_some_and(|new| new.fingerprint() == old.fingerprint());
                if !same {
                    next.previous.insert(name.clone(), Arc::clone(old));
                }
            }
            next
        });
        self.sync_subscribers().await;
        self.sync_schedules().await;
        self.look_at_files.notify_one();
        self.bus.notify_one();
        self.wake.notify_one();
        self.deploy(base_url).await
    }

    /// Replaces the project with what `next` makes of the current one.
    fn swap(&self, next: impl FnOnce(&Project) -> Project) {
        let mut current = self
            .project
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Arc::new(next(&current));
    }

    /// The executions of `integration`'s flows that `event` starts. Their input names
    /// the event and the URLs of the integration's hooks and invokes, which a flow
    /// registers with a third party.
    fn deploy_executions(
        &self,
        integration: &Integration,
        event: DeployEvent,
        base_url: &str,
    ) -> Vec<switchboard_store::NewExecution> {
        let mut hooks = Map::new();
        let mut invokes = Map::new();
        for flow in integration.flows.values() {
            match flow.trigger {
                Trigger::Webhook(_) => {
                    let url = format!("{base_url}/hooks/{}/{}", integration.name, flow.name);
                    hooks.insert(flow.name.clone(), Value::String(url));
                }
                Trigger::Invoke(_) => {
                    let url = format!("{base_url}/invoke/{}/{}", integration.name, flow.name);
                    invokes.insert(flow.name.clone(), Value::String(url));
                }
                _ => {}
            }
        }
        let input = json!({
            "event": event.as_str(),
            "integration": integration.name,
            "fingerprint": integration.fingerprint(),
            "hooks": hooks,
            "invokes": invokes,
        });
        let trigger =
            json!({"kind": "deploy", "event": event.as_str(), "integration": integration.name});
        integration
            .deploy_flows(event)
            .map(|flow| self.prepare_or_plain(flow, trigger.clone(), input.clone()))
            .collect()
    }
}

/// A project with the same integrations.
fn clone_project(project: &Project) -> Project {
    Project {
        integrations: project.integrations.clone(),
        previous: project.previous.clone(),
    }
}
