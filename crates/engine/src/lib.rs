//! The engine: runs flows, durably.
//!
//! [`Engine::submit`] queues an execution in the store and wakes the workers. The
//! [`Engine::run`] loop is the only thing that starts work:
//!
//! - It leases as many queued executions as it has free worker slots (`workers`), each
//!   with a lease that expires after `lease_ttl`, and runs each in its own task.
//! - A task runs the flow's steps in order ([`execution`]). A step with a side effect
//!   (`http`) is checkpointed before the next step starts; steps without one are written
//!   with the next checkpoint. After a crash the execution is leased again and resumes
//!   after its last checkpointed step.
//! - A renewal task extends the leases of running executions every third of `lease_ttl`;
//!   a sweep task queues again executions whose lease expired (a crashed holder).
//! - It wakes on [`Engine::submit`], when the next timer (a retry, a debounce) comes
//!   due, and otherwise polls every `poll_interval`.
//! - Alert rules are evaluated every `alert_interval` ([`alerts`]); a change queues the
//!   executions of the alert's notify flows.
//! - Schedules fire at their times ([`schedules`]); watched folders start an execution
//!   per new file (`file_watch`).
//! - Ended executions older than `retention` are deleted in small batches
//!   ([`retention`]).
//! - With other nodes on the same store (PostgreSQL), their signals wake the same loops
//!   (`hear_the_others`), which then poll only every 30 s as a fallback; one node at a
//!   time leads and runs the scheduler, the bus dispatcher, alerts and retention. Every
//!   node records a heartbeat every [`HEARTBEAT`].
//! - On shutdown it stops leasing, lets running executions finish for `shutdown_grace`,
//!   then stops the rest and gives their leases back so they resume on the next start.

mod alerts;
mod bulk;
pub mod bus;
mod deploy;
mod execution;
mod file_watch;
pub mod invoke;
pub mod outbound;
mod retention;
pub mod schedules;
mod steps;
mod submit;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_core::ids::{LeaseToken, NodeId};
use switchboard_core::{ExecutionId, Secrets, Timestamp};
use switchboard_expr::Limits;
use switchboard_project::Project;
use switchboard_store::outbound::DELIVERY_INTEGRATION;
use switchboard_store::{
    Cluster, Control, Heartbeat, LeasedExecution, NewExecution, Signal, Slots, Store, StoreError,
};
use switchboard_telemetry::Metrics;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use bulk::{BulkAction, BulkJob};
pub use deploy::Deployed;
pub use steps::StepError;
pub use submit::SubmitError;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How many executions run at once.
    pub workers: usize,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often to look for work when nothing woke the engine.
    pub poll_interval: Duration,
    /// How long running executions may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// The limits of every jq evaluation.
    pub expression_limits: Limits,
    /// The most bytes of an `http` step's response body that are read.
    pub max_response_body: usize,
    /// How often alert rules are evaluated.
    pub alert_interval: Duration,
    /// How long ended executions are kept.
    pub retention: Duration,
    /// How often executions past retention are looked for.
    pub retention_interval: Duration,
    /// How outbound webhook deliveries behave.
    pub outbound: outbound::OutboundConfig,
    /// The folders `files` steps and triggers may touch (at least one; each made when
    /// missing); relative paths are taken from the first.
    pub file_roots: Vec<std::path::PathBuf>,
    /// The largest file a `files` step reads whole.
    pub max_file_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            lease_ttl: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            expression_limits: Limits::default(),
            max_response_body: 10 << 20,
            alert_interval: Duration::from_secs(15),
            retention: Duration::from_secs(14 * 24 * 3600),
            retention_interval: Duration::from_secs(60),
            outbound: outbound::OutboundConfig::default(),
            file_roots: Vec::new(),
            max_file_bytes: 64 << 20,
        }
    }
}

/// Could not build the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// A file root cannot be used.
    #[error("cannot use the file roots: {0}")]
    Files(#[from] switchboard_files::FilesError),
}

/// The two pools of workers: the project's flows, and the built-in deliveries of
/// outbound webhooks and callbacks, so that slow subscriber endpoints never hold up
/// flows (or their synchronous callers).
struct Workers {
    flows: Arc<Semaphore>,
    deliveries: Arc<Semaphore>,
}

/// A slot of one of the pools, taken.
struct Slot {
    /// Held while the execution runs.
    _permit: tokio::sync::OwnedSemaphorePermit,
    delivery: bool,
}

impl Workers {
    /// Waits until a slot of either pool is free, and takes it.
    async fn free(&self) -> Option<Slot> {
        tokio::select! {
            permit = Arc::clone(&self.flows).acquire_owned() => permit.ok().map(|permit| Slot { _permit: permit, delivery: false }),
            permit = Arc::clone(&self.deliveries).acquire_owned() => permit.ok().map(|permit| Slot { _permit: permit, delivery: true }),
        }
    }

    /// How many of each a lease may take, counting the slot already taken.
    fn slots(&self, taken: &Slot) -> Slots {
        Slots {
            flows: self.flows.available_permits() + usize::from(!taken.delivery),
            deliveries: self.deliveries.available_permits() + usize::from(taken.delivery),
        }
    }

    /// A slot for `execution`: the one taken first when it is of the same pool, else a
    /// free one of its pool.
    fn take(&self, execution: &LeasedExecution, taken: &mut Option<Slot>) -> Option<Slot> {
        let delivery = execution.integration == DELIVERY_INTEGRATION;
        if taken.as_ref().is_some_and(|slot| slot.delivery == delivery) {
            return taken.take();
        }
        let pool = if delivery {
            &self.deliveries
        } else {
            &self.flows
        };
        Arc::clone(pool)
            .try_acquire_owned()
            .ok()
            .map(|permit| Slot {
                _permit: permit,
                delivery,
            })
    }
}

/// An execution this engine is running.
struct InFlight {
    /// Its lease.
    lease: LeaseToken,
    /// Fires when an operator cancels it.
    stop: CancellationToken,
}

/// The engine of one Switchboard process.
pub struct Engine {
    store: Arc<dyn Store>,
    /// The project being run; a reload swaps it.
    project: std::sync::RwLock<Arc<Project>>,
    secrets: Secrets,
    http: reqwest::Client,
    /// The client of outbound webhook deliveries, behind the address guard.
    webhooks_http: reqwest::Client,
    /// The address guard of deliveries, the resolver of `webhooks_http`.
    webhooks_guard: outbound::AddressGuard,
    /// Compiled endpoint filters.
    filters: outbound::Filters,
    metrics: Arc<Metrics>,
    config: EngineConfig,
    node: NodeId,
    wake: Notify,
    /// Wakes the bus dispatcher: an event was published.
    bus: Notify,
    /// Wakes the scheduler: schedules were synced, paused or resumed.
    schedules_changed: Notify,
    /// Wakes the file watcher: an execution of a `files` flow ended, or the project
    /// changed.
    look_at_files: Notify,
    in_flight: Mutex<HashMap<ExecutionId, InFlight>>,
    bulk: bulk::BulkJobs,
    /// Synchronous callers waiting for answers.
    waiters: invoke::Waiters,
    /// Where `files` steps and triggers read and write.
    files: Arc<dyn switchboard_files::Storage>,
    /// When this engine was made, as its heartbeats say.
    started_at: Timestamp,
    /// How it hears the other nodes sharing its store; `None` when it is alone.
    cluster: Option<Cluster>,
}

/// How often a node records its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// How often the loops of a node sharing its store with others look at the store when
/// nothing woke them: the other nodes' signals wake them, so this is only a fallback.
const CLUSTER_POLL: Duration = Duration::from_secs(30);

impl Engine {
    /// An engine over `store` running `project`, reporting to `metrics`.
    pub fn new(
        store: Arc<dyn Store>,
        project: Arc<Project>,
        secrets: Secrets,
        config: EngineConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, EngineError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let webhooks_guard = config.outbound.guard();
        let webhooks_http = config.outbound.client(webhooks_guard.clone())?;
        let roots = switchboard_files::Roots::new(&config.file_roots)?;
        let files: Arc<dyn switchboard_files::Storage> =
            Arc::new(switchboard_files::LocalStorage::new(roots));
        let cluster = store.cluster();
        Ok(Arc::new(Self {
            store,
            project: std::sync::RwLock::new(project),
            secrets,
            http,
            webhooks_http,
            webhooks_guard,
            filters: outbound::Filters::default(),
            metrics,
            config,
            node: NodeId::generate(),
            wake: Notify::new(),
            bus: Notify::new(),
            schedules_changed: Notify::new(),
            look_at_files: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            bulk: bulk::BulkJobs::default(),
            waiters: invoke::Waiters::default(),
            files,
            started_at: Timestamp::now(),
            cluster,
        }))
    }

    /// The project being run.
    pub fn project(&self) -> Arc<Project> {
        Arc::clone(
            &self
                .project
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The metrics it reports to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// This node's id, as its leases and heartbeats name it.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Whether this node leads: runs the scheduler, the bus dispatcher, alerts and
    /// retention. Alone on its store it always does.
    pub fn leads(&self) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|cluster| *cluster.leading.borrow())
    }

    /// Waits until this node leads; `false` when `shutdown` comes first.
    pub(crate) async fn until_leading(&self, shutdown: &CancellationToken) -> bool {
        let Some(cluster) = &self.cluster else {
            return !shutdown.is_cancelled();
        };
        let mut leading = cluster.leading.clone();
        tokio::select! {
            () = shutdown.cancelled() => false,
            led = leading.wait_for(|leads| *leads) => led.is_ok(),
        }
    }

    /// How long a loop sleeps when nothing woke it.
    pub(crate) fn idle_poll(&self) -> Duration {
        if self.cluster.is_some() {
            self.config.poll_interval.max(CLUSTER_POLL)
        } else {
            self.config.poll_interval
        }
    }

    /// Wakes this node's loops on the signals the other nodes sharing its store send.
    async fn hear_the_others(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let mut heard = cluster.signals.subscribe();
        loop {
            let signal = tokio::select! {
                () = shutdown.cancelled() => return,
                signal = heard.recv() => signal,
            };
            match signal {
                Ok(Signal::Work) => self.wake.notify_one(),
                Ok(Signal::Events) => self.bus.notify_one(),
                Ok(Signal::Schedules) => self.schedules_changed.notify_one(),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    self.wake.notify_one();
                    self.bus.notify_one();
                    self.schedules_changed.notify_one();
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Records this node's heartbeat.
    async fn beat(&self) {
        let heartbeat = Heartbeat {
            node: self.node.as_str().to_owned(),
            started_at: self.started_at,
            workers: u32::try_from(self.config.workers).unwrap_or(u32::MAX),
            webhook_workers: u32::try_from(self.config.outbound.workers).unwrap_or(u32::MAX),
            leading: self.leads(),
            version: String::from(env!("CARGO_PKG_VERSION")),
            at: Timestamp::now(),
        };
        if let Err(error) = self.store.heartbeat(heartbeat).await {
            tracing::error!(%error, "Could not record this node's heartbeat.");
        }
    }

    /// Runs workers until `shutdown` is cancelled, then drains (see the crate docs).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        match self.store.recover_orphans(&self.node).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(
                count,
                "Resuming executions left running by an earlier process."
            ),
            Err(error) => {
                tracing::error!(%error, "Could not recover executions of an earlier process.")
            }
        }
        let maintenance = tokio::spawn(Arc::clone(&self).maintain(shutdown.clone()));
        let hearing = tokio::spawn(Arc::clone(&self).hear_the_others(shutdown.clone()));
        let alerting = tokio::spawn(alerts::watch(
            Arc::clone(&self),
            self.config.alert_interval,
            shutdown.clone(),
        ));
        let pruning = tokio::spawn(retention::prune(Arc::clone(&self), shutdown.clone()));
        let dispatching = tokio::spawn(bus::dispatch(Arc::clone(&self), shutdown.clone()));
        let scheduling = tokio::spawn(schedules::watch(Arc::clone(&self), shutdown.clone()));
        let watching = tokio::spawn(file_watch::watch(Arc::clone(&self), shutdown.clone()));
        let workers = Workers {
            flows: Arc::new(Semaphore::new(self.config.workers.max(1))),
            deliveries: Arc::new(Semaphore::new(self.config.outbound.workers.max(1))),
        };
        let mut running = JoinSet::new();
        while let Some(first_slot) = tokio::select! {
            _ = shutdown.cancelled() => None,
            slot = workers.free() => slot,
        } {
            while running.try_join_next().is_some() {}
            let slots = workers.slots(&first_slot);
            let now = Timestamp::now();
            let expires_at = now.after(self.config.lease_ttl);
            let leased = match self.store.lease(&self.node, slots, now, expires_at).await {
                Ok(leased) => leased,
                Err(error) => {
                    tracing::error!(%error, "Could not lease executions.");
                    Vec::new()
                }
            };
            if leased.is_empty() {
                drop(first_slot);
                // Sleep until woken, the next timer (a retry, a debounce) comes due, or
                // the poll interval passes, whichever is first.
                let poll = self.idle_poll();
                let next_due = match self.store.next_run_at(now).await {
                    Ok(Some(at)) => at.duration_since(Timestamp::now()),
                    Ok(None) => poll,
                    Err(error) => {
                        tracing::error!(%error, "Could not read the next timer.");
                        self.config.poll_interval
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(next_due.min(poll)) => {}
                }
                continue;
            }
            let mut first_slot = Some(first_slot);
            for execution in leased {
                let Some(slot) = workers.take(&execution, &mut first_slot) else {
                    // No room after all (cannot happen: the lease asked for no more than
                    // the free slots); give it back so it runs on the next round.
                    let lease = vec![(execution.id.clone(), execution.lease.clone())];
                    if let Err(error) = self.store.release(lease).await {
                        tracing::error!(%error, "Could not release an execution.");
                    }
                    continue;
                };
                let stop = CancellationToken::new();
                self.track(
                    &execution.id,
                    Some(InFlight {
                        lease: execution.lease.clone(),
                        stop: stop.clone(),
                    }),
                );
                let engine = Arc::clone(&self);
                running.spawn(async move {
                    let id = execution.id.clone();
                    let (execution_integration, execution_flow) =
                        (execution.integration.clone(), execution.flow.clone());
                    if execution.integration == DELIVERY_INTEGRATION {
                        outbound::deliver(&engine, execution, stop).await;
                    } else {
                        execution::run(&engine, execution, stop).await;
                    }
                    engine.track(&id, None);
                    drop(slot);
                    let from_files = engine
                        .project()
                        .runnable_flow(&execution_integration, &execution_flow)
                        .is_some_and(|flow| {
                            matches!(flow.trigger, switchboard_project::Trigger::Files(_))
                        });
                    if from_files {
                        // Its file moves on now.
                        engine.look_at_files.notify_one();
                    }
                    // Its end may let another start: the next of its ordering sequence,
                    // or one waiting for room in its concurrency group.
                    engine.wake.notify_one();
                });
            }
        }
        self.drain(running).await;
        maintenance.abort();
        hearing.abort();
        alerting.abort();
        pruning.abort();
        dispatching.abort();
        scheduling.abort();
        watching.abort();
    }

    /// Remembers (or forgets) a running execution.
    fn track(&self, id: &ExecutionId, running: Option<InFlight>) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match running {
            Some(running) => in_flight.insert(id.clone(), running),
            None => in_flight.remove(id),
        };
    }

    fn leases(&self) -> Vec<(ExecutionId, LeaseToken)> {
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        in_flight
            .iter()
            .map(|(id, running)| (id.clone(), running.lease.clone()))
            .collect()
    }

    /// Queues a failed execution again at its failed step, with fresh attempts.
    pub async fn retry(&self, id: &ExecutionId) -> Result<Control, StoreError> {
        let control = self.store.retry_failed(id).await?;
        if control == Control::Applied {
            self.wake.notify_one();
        }
        Ok(control)
    }

    /// Starts a new execution with the trigger and input of `id`, linked to it; `None`
    /// when there is no such execution.
    pub async fn replay(&self, id: &ExecutionId) -> Result<Option<ExecutionId>, StoreError> {
        let Some(original) = self.store.execution(id).await? else {
            return Ok(None);
        };
        let summary = original.summary;
        let mut new = match self.project().flow(&summary.integration, &summary.flow) {
            Some(flow) => self.prepare_or_plain(flow, original.trigger, original.input),
            None => NewExecution::new(
                &summary.integration,
                &summary.flow,
                original.trigger,
                original.input,
            ),
        };
        new.dedupe = None;
        new.replay_of = Some(id.clone());
        let enqueued = self.store.enqueue(new).await?;
        self.wake.notify_one();
        Ok(Some(enqueued.id))
    }

    /// Cancels an execution: at once when it waits; when it runs here, its running step
    /// is stopped, and elsewhere it stops at its next checkpoint.
    pub async fn cancel(&self, id: &ExecutionId) -> Result<Control, StoreError> {
        let control = self.store.cancel(id).await?;
        if control == Control::Applied {
            self.answered(id);
        }
        if control == Control::Applied
            && let Some(cancelled) = self.store.execution(id).await?
        {
            let summary = cancelled.summary;
            let trigger = self
                .project()
                .flow(&summary.integration, &summary.flow)
                .map_or("unknown", |flow| flow.trigger.kind());
            self.metrics.execution_finished(
                &summary.integration,
                &summary.flow,
                trigger,
                "cancelled",
                Timestamp::now().duration_since(summary.created_at),
            );
        }
        if control == Control::CancelRequested {
            let in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(running) = in_flight.get(id) {
                running.stop.cancel();
            }
        }
        Ok(control)
    }

    /// Waits up to the grace period for running executions, then stops them and gives
    /// their leases back.
    async fn drain(&self, mut running: JoinSet<()>) {
        let grace = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = running.join_next() => if next.is_none() { break },
                () = &mut grace => {
                    tracing::warn!(count = running.len(), "Shutdown grace period over; stopping running executions.");
                    running.abort_all();
                    while running.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let leases = self.leases();
        if !leases.is_empty() {
            let count = leases.len();
            match self.store.release(leases).await {
                Ok(()) => {
                    tracing::info!(count, "Released executions; they resume on the next start.")
                }
                Err(error) => {
                    tracing::error!(%error, "Could not release executions; their leases will expire.")
                }
            }
        }
    }

    /// Renews the leases of running executions and requeues expired ones, until shutdown.
    async fn maintain(self: Arc<Self>, shutdown: CancellationToken) {
        let mut renew =
            tokio::time::interval((self.config.lease_ttl / 3).max(Duration::from_millis(100)));
        let mut sweep = tokio::time::interval(self.config.lease_ttl.max(Duration::from_secs(1)));
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = heartbeat.tick() => self.beat().await,
                _ = renew.tick() => {
                    let leases = self.leases();
                    if leases.is_empty() { continue }
                    let expires_at = Timestamp::now().after(self.config.lease_ttl);
                    match self.store.renew(leases, expires_at).await {
                        Ok(lost) if !lost.is_empty() => tracing::warn!(count = lost.len(), "Leases were lost; those executions run elsewhere."),
                        Ok(_) => {}
                        Err(error) => tracing::error!(%error, "Could not renew leases."),
                    }
                }
                _ = sweep.tick() => match self.store.requeue_expired(Timestamp::now()).await {
                    Ok(0) => {}
                    Ok(count) => { tracing::warn!(count, "Requeued executions whose lease expired."); self.wake.notify_one(); }
                    Err(error) => tracing::error!(%error, "Could not requeue expired executions."),
                }
            }
        }
    }
}

/// An error with its causes, which reqwest keeps in its source chain.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
