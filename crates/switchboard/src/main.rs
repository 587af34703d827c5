//! The `switchboard` command: `serve` a project, `validate` it, `run` one flow, and
//! `executions retry|replay` many at once on a running server.
//!
//! It parses flags (every `serve` option is also a `SWITCHBOARD_*` variable), sets up
//! logging and signals, and hands over to the library crates.

mod bulk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use switchboard_core::{ByteSize, HumanDuration, Secret, Secrets};
use switchboard_engine::outbound::OutboundConfig;
use switchboard_engine::{Engine, EngineConfig};
use switchboard_expr::Limits;
use switchboard_project::{ConfigValue, Project};
use switchboard_server::ServerConfig;
use switchboard_server::watch::Watch;
use switchboard_store::{SqliteStore, Store};
use switchboard_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

/// Switchboard: a self-hosted integration engine. Integrations are YAML files of flows;
/// every accepted input is durable before it is acknowledged.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SWITCHBOARD_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Export traces over OTLP/HTTP to this base URL (e.g. `http://127.0.0.1:4318`);
    /// needs a build with `--features otel`.
    #[arg(long, global = true, env = "SWITCHBOARD_OTEL_ENDPOINT")]
    otel_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a project: inbound hooks, the management API and the workers.
    Serve(Box<ServeArgs>),
    /// Check integration files and folders; print one `file:line:column: problem` per line.
    Validate {
        /// Files or folders of integration YAML files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run one flow once, in-process against a temporary store, and print the execution.
    Run(RunArgs),
    /// Act on many executions of a running server at once.
    #[command(subcommand)]
    Executions(ExecutionsCommand),
    /// Manage stores.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy every record of a stopped SQLite store into an empty PostgreSQL store.
    Migrate {
        /// The data folder of the SQLite store (no `serve` may be running on it).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL store (postgres://user:password@host:port/database); it must
        /// hold no records yet (a new database, or a new schema named in the URL).
        #[arg(long, env = "SWITCHBOARD_STORE", hide_env_values = true)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum ExecutionsCommand {
    /// Resume the failed executions that match, each from its failed step.
    Retry(bulk::BulkArgs),
    /// Start new executions with the triggers of those that match.
    Replay(bulk::BulkArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Files or folders of integration YAML files.
    #[arg(
        env = "SWITCHBOARD_PROJECT",
        value_delimiter = ',',
        default_value = "examples"
    )]
    project: Vec<PathBuf>,
    /// A config variable's value over its YAML default: `integration.variable=value`,
    /// the value as JSON when it parses as JSON, else as text; repeat or separate with
    /// commas.
    #[arg(long = "config", env = "SWITCHBOARD_CONFIG", value_delimiter = ',')]
    config: Vec<ConfigValue>,
    /// Reload the project when its files change, without a restart: a version with
    /// problems is reported and the running one stays.
    #[arg(long, env = "SWITCHBOARD_WATCH")]
    watch: bool,
    /// How often `--watch` looks at the project's files.
    #[arg(long, env = "SWITCHBOARD_WATCH_INTERVAL", default_value = "1s")]
    watch_interval: HumanDuration,
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The data folder (SQLite database, WAL; and the default root of files).
    #[arg(long, env = "SWITCHBOARD_DATA", default_value = "./switchboard-data")]
    data: PathBuf,
    /// Keep everything in this PostgreSQL database instead of the data folder, shared
    /// with every node that names it (postgres://user:password@host:port/database).
    #[arg(long, env = "SWITCHBOARD_STORE", hide_env_values = true)]
    store: Option<String>,
    /// How many executions run at once.
    #[arg(long, env = "SWITCHBOARD_WORKERS", default_value_t = 16)]
    workers: usize,
    /// The largest body a hook accepts (e.g. 1MiB, 512KiB, 2000000).
    #[arg(long, env = "SWITCHBOARD_MAX_BODY", default_value = "1MiB")]
    max_body: ByteSize,
    /// How long running executions may take to finish at shutdown.
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_GRACE", default_value = "30s")]
    shutdown_grace: HumanDuration,
    /// How long an execution's lease lasts without renewal (a crashed holder's work
    /// resumes elsewhere after it).
    #[arg(long, env = "SWITCHBOARD_LEASE_TTL", default_value = "60s")]
    lease_ttl: HumanDuration,
    /// How long one jq expression may run before it is stopped.
    #[arg(long, env = "SWITCHBOARD_EXPRESSION_TIMEOUT", default_value = "1s")]
    expression_timeout: HumanDuration,
    /// How often alert rules are evaluated.
    #[arg(long, env = "SWITCHBOARD_ALERT_INTERVAL", default_value = "15s")]
    alert_interval: HumanDuration,
    /// How long ended executions (with their steps and logs) are kept.
    #[arg(long, env = "SWITCHBOARD_RETENTION", default_value = "14d")]
    retention: HumanDuration,
    /// The base URL hooks are reachable at from outside, for hook URLs in the API.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    public_url: Option<String>,
    /// Networks outbound webhook deliveries may reach although they are internal
    /// (loopback, private, link-local), e.g. 10.0.0.0/8; repeat or separate with commas.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_ALLOW_NETWORK", value_delimiter = ',')]
    webhook_allow_network: Vec<ipnet::IpNet>,
    /// How many outbound deliveries (and callbacks) run at once, apart from `--workers`.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_WORKERS", default_value_t = 16)]
    webhook_workers: usize,
    /// The waits between outbound delivery attempts, for endpoints without their own.
    #[arg(
        long,
        env = "SWITCHBOARD_WEBHOOK_RETRY_SCHEDULE",
        value_delimiter = ',',
        default_value = "5s,5m,30m,2h,5h,10h,10h"
    )]
    webhook_retry_schedule: Vec<HumanDuration>,
    /// An endpoint whose every delivery attempt failed for this long is disabled.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_DISABLE_AFTER", default_value = "5d")]
    webhook_disable_after: HumanDuration,
    /// How long one outbound delivery attempt may take in all.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_TIMEOUT", default_value = "30s")]
    webhook_timeout: HumanDuration,
    /// Folders `files` steps may touch; relative paths are taken from the first; repeat
    /// or separate with commas (default: `files` in the data folder).
    #[arg(long, env = "SWITCHBOARD_FILES_ROOT", value_delimiter = ',')]
    files_root: Vec<PathBuf>,
    /// The largest file a `files` step reads whole.
    #[arg(long, env = "SWITCHBOARD_MAX_FILE_SIZE", default_value = "64MiB")]
    max_file_size: ByteSize,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The integration file.
    file: PathBuf,
    /// The flow to run.
    flow: String,
    /// The trigger data: JSON text, or @path to a JSON file.
    #[arg(long, default_value = "null")]
    input: String,
    /// How long the flow may take.
    #[arg(long, default_value = "5m")]
    timeout: HumanDuration,
    /// Folders `files` steps may touch (default: the current folder).
    #[arg(long, value_delimiter = ',')]
    files_root: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let traces = match init_logging(cli.log_format, cli.otel_endpoint.as_deref()) {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Validate { paths } => validate(&paths),
            Command::Run(args) => run_flow(args).await,
            Command::Executions(ExecutionsCommand::Retry(args)) => {
                bulk::run(bulk::Action::Retry, args).await
            }
            Command::Executions(ExecutionsCommand::Replay(args)) => {
                bulk::run(bulk::Action::Replay, args).await
            }
            Command::Store(StoreCommand::Migrate { from, to }) => migrate_store(&from, to).await,
        }
    });
    traces.finish();
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `switchboard store migrate`: copies an SQLite store into PostgreSQL.
async fn migrate_store(from: &std::path::Path, to: String) -> anyhow::Result<ExitCode> {
    if !from.join("switchboard.db").is_file() {
        anyhow::bail!(
            "{} holds no Switchboard store (no switchboard.db)",
            from.display()
        );
    }
    let target = tokio::task::spawn_blocking(move || {
        switchboard_store::PostgresStore::connect(&to, Arc::default())
    })
    .await
    .context("the connection to PostgreSQL stopped")?
    .context("cannot open the PostgreSQL store")?;
    let copied = target
        .import_sqlite(from)
        .await
        .with_context(|| format!("cannot copy the store in {}", from.display()))?;
    let total: u64 = copied.iter().map(|(_, rows)| rows).sum();
    for (table, rows) in &copied {
        println!("{table:<20} {rows:>10}");
    }
    println!("copied {total} records from {}", from.display());
    Ok(ExitCode::SUCCESS)
}

/// The trace exporter, when one runs.
struct TraceExport {
    #[cfg(feature = "otel")]
    exporter: Option<switchboard_telemetry::otel::Exporter>,
}

impl TraceExport {
    /// Sends the spans not yet sent.
    fn finish(self) {
        #[cfg(feature = "otel")]
        if let Some(exporter) = self.exporter {
            exporter.shutdown();
        }
    }
}

/// Logs to stderr as text or JSON, filtered by `RUST_LOG` (default `info`), and exports
/// the spans when `otel_endpoint` is given.
fn init_logging(format: LogFormat, otel_endpoint: Option<&str>) -> anyhow::Result<TraceExport> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let text = matches!(format, LogFormat::Text)
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    let json = matches!(format, LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    let logs = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json);
    #[cfg(feature = "otel")]
    {
        let exporter = otel_endpoint
            .map(switchboard_telemetry::otel::Exporter::start)
            .transpose()?;
        logs.with(exporter.as_ref().map(|exporter| exporter.layer()))
            .init();
        Ok(TraceExport { exporter })
    }
    #[cfg(not(feature = "otel"))]
    {
        if let Some(endpoint) = otel_endpoint {
            anyhow::bail!(
                "--otel-endpoint {endpoint}: this build cannot export traces; build it with `cargo build --features otel`"
            );
        }
        logs.init();
        Ok(TraceExport {})
    }
}

/// Loads a project, printing every problem on failure.
fn load_project(paths: &[PathBuf]) -> Result<Project, ExitCode> {
    switchboard_project::load(paths).map_err(|problems| {
        eprintln!("{problems}");
        ExitCode::FAILURE
    })
}

fn validate(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    Ok(match load_project(paths) {
        Ok(project) => {
            let flows: usize = project
                .integrations
                .values()
                .map(|integration| integration.flows.len())
                .sum();
            println!(
                "ok: {} integrations, {flows} flows",
                project.integrations.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut project = match load_project(&args.project) {
        Ok(project) => project,
        Err(code) => return Ok(code),
    };
    if let Err(problem) = project.set_config(&args.config) {
        eprintln!("--config {problem}");
        return Ok(ExitCode::FAILURE);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let config = ServerConfig {
        data_dir: args.data.clone(),
        store: args.store.clone().map(Secret::new),
        project: Arc::new(project),
        secrets: Secrets::from_env(),
        engine: EngineConfig {
            workers: args.workers,
            lease_ttl: args.lease_ttl.into(),
            shutdown_grace: args.shutdown_grace.into(),
            expression_limits: Limits {
                timeout: args.expression_timeout.into(),
                ..Limits::default()
            },
            alert_interval: args.alert_interval.into(),
            retention: args.retention.into(),
            outbound: OutboundConfig {
                workers: args.webhook_workers,
                retry_schedule: args
                    .webhook_retry_schedule
                    .iter()
                    .map(|wait| wait.0)
                    .collect(),
                disable_after: args.webhook_disable_after.into(),
                allowed_networks: args.webhook_allow_network,
                timeout: args.webhook_timeout.into(),
                ..OutboundConfig::default()
            },
            file_roots: args.files_root.clone(),
            max_file_bytes: args.max_file_size.0,
            ..EngineConfig::default()
        },
        max_body: usize::try_from(args.max_body.0).unwrap_or(usize::MAX),
        public_url: args.public_url,
        watch: args.watch.then(|| Watch {
            paths: args.project.clone(),
            config: args.config.clone(),
            interval: args.watch_interval.into(),
        }),
    };
    tracing::info!(%address, data = %args.data.display(), integrations = config.project.integrations.len(), "Serving.");
    let shutdown = shutdown_signal();
    println!("switchboard listening on http://{address}");
    switchboard_server::run(config, listener, shutdown)
        .await
        .context("the server stopped")?;
    tracing::info!("Stopped.");
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a signal that comes while the server starts
/// (deploying, before it serves) stops it gracefully instead of killing it.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = signal(SignalKind::terminate())
            .and_then(|terminate| Ok((terminate, signal(SignalKind::interrupt())?)));
        async move {
            match signals {
                Ok((mut terminate, mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "Cannot listen for SIGTERM; only Ctrl-C stops the server.");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run_flow(args: RunArgs) -> anyhow::Result<ExitCode> {
    let project = match load_project(std::slice::from_ref(&args.file)) {
        Ok(project) => project,
        Err(code) => return Ok(code),
    };
    let Some(flow) = project
        .integrations
        .values()
        .find_map(|integration| integration.flows.get(&args.flow))
        .cloned()
    else {
        anyhow::bail!("{} has no flow `{}`", args.file.display(), args.flow);
    };
    let input_text = match args.input.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the input file {path}"))?,
        None => args.input.clone(),
    };
    let input: serde_json::Value =
        serde_json::from_str(&input_text).context("--input is not valid JSON")?;
    let data = tempfile::tempdir().context("cannot make a temporary data folder")?;
    let metrics = Arc::new(Metrics::new());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(data.path(), Arc::clone(&metrics))?);
    let engine = Engine::new(
        Arc::clone(&store),
        Arc::new(project),
        Secrets::from_env(),
        EngineConfig {
            workers: 1,
            file_roots: if args.files_root.is_empty() {
                vec![std::env::current_dir().context("cannot read the current folder")?]
            } else {
                args.files_root.clone()
            },
            ..EngineConfig::default()
        },
        metrics,
    )?;
    let trigger = serde_json::json!({"kind": "manual", "body": input});
    let id = engine.submit(&flow, trigger, input).await?.id;
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Arc::clone(&engine).run(stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from(args.timeout);
    let execution = loop {
        match store.execution(&id).await? {
            Some(execution) if execution.summary.status.is_final() => break execution,
            _ if tokio::time::Instant::now() >= deadline => {
                stop.cancel();
                anyhow::bail!("the flow did not finish within {}", args.timeout);
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    stop.cancel();
    let _ = worker.await;
    println!("{}", serde_json::to_string_pretty(&execution)?);
    Ok(
        if execution.summary.status == switchboard_store::ExecutionStatus::Succeeded {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}
