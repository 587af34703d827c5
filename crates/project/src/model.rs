//! The compiled project: what the engine and the server run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_expr::{Expr, Template};

use switchboard_files::Format;
use switchboard_files::format::CsvOptions;

use crate::schedule::ScheduleTrigger;

/// Every integration of a project, by name.
#[derive(Debug, Default)]
pub struct Project {
    /// The integrations, by name.
    pub integrations: BTreeMap<String, Arc<Integration>>,
    /// Versions a reload replaced or removed, and integrations removed since the last
    /// deployment: their flows still run the executions queued for them, and the
    /// `removed` flows of an integration that is gone.
    pub previous: BTreeMap<String, Arc<Integration>>,
}

impl Project {
    /// The flow `flow` of integration `integration`.
    pub fn flow(&self, integration: &str, flow: &str) -> Option<&Arc<Flow>> {
        self.integrations.get(integration)?.flows.get(flow)
    }

    /// The flow an execution of `integration`/`flow` runs: the current version's, else
    /// the previous version's.
    pub fn runnable_flow(&self, integration: &str, flow: &str) -> Option<&Arc<Flow>> {
        self.flow(integration, flow)
            .or_else(|| self.previous.get(integration)?.flows.get(flow))
    }

    /// The integration whose `$config` an execution of `name` reads: the current
    /// version, else the previous one.
    pub fn runnable_integration(&self, name: &str) -> Option<&Arc<Integration>> {
        self.integrations
            .get(name)
            .or_else(|| self.previous.get(name))
    }

    /// Sets config variables over their YAML defaults; an error names the first one that
    /// is not a variable of the project.
    pub fn set_config(&mut self, values: &[ConfigValue]) -> Result<(), String> {
        for value in values {
            let integration = self
                .integrations
                .get_mut(&value.integration)
                .ok_or_else(|| {
                    format!(
                        "`{}.{}` names no integration of the project",
                        value.integration, value.name
                    )
                })?;
            let integration = Arc::make_mut(integration);
            let var = integration
                .config
                .iter_mut()
                .find(|var| var.name == value.name)
                .ok_or_else(|| {
                    format!(
                        "`{}.{}`: the integration has no config variable `{}`",
                        value.integration, value.name, value.name
                    )
                })?;
            var.value = value.value.clone();
        }
        Ok(())
    }
}

/// A config value given when the project is served (`--config shop.erp_url=https://…`),
/// over the YAML's default.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigValue {
    /// The integration.
    pub integration: String,
    /// The variable.
    pub name: String,
    /// The value: the text as JSON when it parses as JSON, else the text itself.
    pub value: serde_json::Value,
}

impl std::str::FromStr for ConfigValue {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || format!("`{text}` is not `integration.variable=value`");
        let (key, value) = text.split_once('=').ok_or_else(malformed)?;
        let (integration, name) = key.split_once('.').ok_or_else(malformed)?;
        if integration.is_empty() || name.is_empty() {
            return Err(malformed());
        }
        Ok(Self {
            integration: integration.to_owned(),
            name: name.to_owned(),
            value: serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_owned())),
        })
    }
}

/// One integration file, compiled.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The file it came from.
    pub file: PathBuf,
    /// The file's text, kept so that its `deploy` flows can run once it is removed.
    pub source: String,
    /// Its config variables, in name order.
    pub config: Vec<ConfigVar>,
    /// Its flows, by name.
    pub flows: BTreeMap<String, Arc<Flow>>,
    /// Its alert rules, in name order.
    pub alerts: Vec<Arc<Alert>>,
}

impl Integration {
    /// What tells one version of the integration from another: a SHA-256 of its file
    /// and its config values (which `--config` may change without the file).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(self.source.as_bytes());
        hash.update([0]);
        hash.update(self.config_values().to_string().as_bytes());
        hex::encode(hash.finalize())
    }

    /// Its `deploy` flows that `event` starts.
    pub fn deploy_flows(&self, event: DeployEvent) -> impl Iterator<Item = &Arc<Flow>> {
        self.flows
            .values()
            .filter(move |flow| matches!(&flow.trigger, Trigger::Deploy(on) if on.contains(&event)))
    }

    /// The `$config` object: every variable with its value.
    pub fn config_values(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.config
                .iter()
                .map(|var| (var.name.clone(), var.value.clone()))
                .collect(),
        )
    }
}

/// One config variable.
#[derive(Debug, Clone)]
pub struct ConfigVar {
    /// Its name.
    pub name: String,
    /// Its value (the default, until instances override it).
    pub value: serde_json::Value,
    /// What it means.
    pub description: Option<String>,
}

/// One flow, compiled.
#[derive(Debug)]
pub struct Flow {
    /// The integration it belongs to.
    pub integration: String,
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// What starts it.
    pub trigger: Trigger,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// How its steps are tried again, unless a step sets its own.
    pub retry: Option<RetryPolicy>,
    /// The `error` flow started when an execution fails for good.
    pub on_error: Option<String>,
    /// The most time an execution may take from acceptance to end.
    pub timeout: Option<Duration>,
    /// How many of its executions may run at once.
    pub concurrency: Option<Concurrency>,
    /// Which of its executions run one after another.
    pub ordering: Option<Expr>,
    /// Which of its executions only run when no later one follows soon.
    pub debounce: Option<Debounce>,
    /// How fast its executions may start.
    pub throttle: Option<Throttle>,
}

/// A flow's debounce: of a burst with the same key, only the last execution runs.
#[derive(Debug, Clone)]
pub struct Debounce {
    /// The group; `None`: the whole flow.
    pub key: Option<Expr>,
    /// How long to wait for a later execution of the group.
    pub period: Duration,
}

/// A flow's throttle: at most `count` starts per `per`, per key.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// How many starts.
    pub count: u32,
    /// In how long.
    pub per: Duration,
    /// The group; `None`: the whole flow.
    pub key: Option<Expr>,
}

/// A flow's concurrency limit.
#[derive(Debug, Clone)]
pub struct Concurrency {
    /// How many may run at once, per key.
    pub limit: u32,
    /// The group an execution counts in; `None`: the whole flow.
    pub key: Option<Expr>,
}

impl Flow {
    /// How `step` is tried again: its own policy, else the flow's, else its kind's default
    /// ([`RetryPolicy::HTTP`] for `http`, one attempt for the rest).
    pub fn retry_policy(&self, step: &Step) -> RetryPolicy {
        step.retry.or(self.retry).unwrap_or(match step.kind {
            StepKind::Http(_) => RetryPolicy::HTTP,
            _ => RetryPolicy::ONCE,
        })
    }
}

/// How the wait between attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Doubles from `initial` at each attempt, up to `max`.
    Exponential,
    /// `initial` every time.
    Fixed,
}

/// How a failed step is tried again. Only failures that may pass are retried (see the
/// engine's step errors); the others fail the execution at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// How the wait grows.
    pub backoff: Backoff,
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Whether each wait is drawn at random between zero and its computed length ("full
    /// jitter"), so that many executions failing together do not retry together.
    pub jitter: bool,
}

impl RetryPolicy {
    /// The default of `http` steps: 5 attempts, exponential from 1 s to 5 min, full jitter.
    pub const HTTP: Self = Self {
        attempts: 5,
        backoff: Backoff::Exponential,
        initial: Duration::from_secs(1),
        max: Duration::from_secs(300),
        jitter: true,
    };

    /// One attempt: no retries.
    pub const ONCE: Self = Self {
        attempts: 1,
        ..Self::HTTP
    };

    /// The wait after failed attempt number `failed` (from 1); `random` is a number in
    /// `[0, 1)`, used when `jitter` is on.
    pub fn delay(&self, failed: u32, random: f64) -> Duration {
        let full = match self.backoff {
            Backoff::Fixed => self.initial,
            Backoff::Exponential => {
                let doublings = failed.saturating_sub(1).min(63);
                self.initial
                    .checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
                    .unwrap_or(self.max)
            }
        }
        .min(self.max);
        if self.jitter {
            full.mul_f64(random.clamp(0.0, 1.0))
        } else {
            full
        }
    }
}

/// What starts a flow.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// An HTTP request to `/hooks/<integration>/<flow>`.
    Webhook(Box<WebhookTrigger>),
    /// An alert of the integration fired or resolved; the input is the notification.
    Alert,
    /// A flow naming this one in `on_error` failed; the input is the failed execution.
    Error,
    /// An event on the built-in bus; the input is its data.
    Event(EventTrigger),
    /// A synchronous call to `/invoke/<integration>/<flow>`; the caller waits.
    Invoke(Box<WebhookTrigger>),
    /// Another flow's `call` step or dispatch; the input is what it passed.
    Call,
    /// The integration was deployed, changed or removed; the input says which.
    Deploy(Vec<DeployEvent>),
    /// A cron pattern or interval; the trigger data says which fire this is.
    Schedule(Box<ScheduleTrigger>),
    /// New files in a folder; the input is the file's name, path, size and time.
    Files(Box<FilesTrigger>),
}

/// The `files` trigger, compiled.
#[derive(Debug, Clone)]
pub struct FilesTrigger {
    /// The folder watched.
    pub path: String,
    /// The names taken.
    pub pattern: Option<String>,
    /// How often the folder is looked at.
    pub every: Duration,
    /// What happens to a file whose execution succeeded.
    pub after: AfterFile,
    /// Where a file whose execution failed goes; `None`: it stays.
    pub failed_to: Option<String>,
}

/// What happens to a file once its execution succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFile {
    /// It moves to this folder.
    Move(String),
    /// It is deleted.
    Delete,
}

/// What happened to an integration, for its `deploy` flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployEvent {
    /// It was loaded for the first time.
    Deployed,
    /// Its file (or a config value) changed.
    Updated,
    /// Its file was removed from the project.
    Removed,
}

impl DeployEvent {
    /// Every event, in order.
    pub const ALL: [Self; 3] = [Self::Deployed, Self::Updated, Self::Removed];

    /// The event as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployed => "deployed",
            Self::Updated => "updated",
            Self::Removed => "removed",
        }
    }
}

/// The `event` trigger, compiled.
#[derive(Debug, Clone)]
pub struct EventTrigger {
    /// The topic, or a pattern where `*` stands for any run of characters.
    pub topic: String,
    /// The condition an event's data must meet.
    pub filter: Option<Expr>,
}

impl Trigger {
    /// The trigger's kind, as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Alert => "alert",
            Self::Error => "error",
            Self::Event(_) => "event",
            Self::Invoke(_) => "invoke",
            Self::Call => "call",
            Self::Deploy(_) => "deploy",
            Self::Schedule(_) => "schedule",
            Self::Files(_) => "files",
        }
    }

    /// The settings of a `schedule` trigger.
    pub fn schedule(&self) -> Option<&ScheduleTrigger> {
        match self {
            Self::Schedule(schedule) => Some(schedule),
            _ => None,
        }
    }

    /// The settings of a trigger that takes HTTP requests (`webhook`, `invoke`).
    pub fn request(&self) -> Option<&WebhookTrigger> {
        match self {
            Self::Webhook(webhook) | Self::Invoke(webhook) => Some(webhook),
            _ => None,
        }
    }
}

/// The `webhook` trigger, compiled.
#[derive(Debug, Clone)]
pub struct WebhookTrigger {
    /// Upper-case HTTP methods the hook answers.
    pub methods: Vec<String>,
    /// The bodies the hook takes.
    pub accept: BodyFormat,
    /// How repeated deliveries are recognised, when they are.
    pub dedupe: Option<Dedupe>,
    /// How the sender's signature is checked, when it is.
    pub verify: Option<Verify>,
    /// The answer to a provider's handshake request (`null`: not a handshake).
    pub challenge: Option<Expr>,
    /// Set when the caller waits for the flow's answer.
    pub sync: Option<SyncAnswer>,
    /// The program naming the sibling flow each request goes to.
    pub dispatch: Option<Expr>,
}

/// How a synchronous trigger answers.
#[derive(Debug, Clone)]
pub struct SyncAnswer {
    /// How long the caller waits before getting `202`.
    pub wait: Duration,
    /// The secret the answer is signed with when posted to a callback URL; without it,
    /// callers cannot ask for a callback.
    pub callback_secret: Option<Template>,
}

/// The `challenge: slack` handshake: Slack's `url_verification` request is answered with
/// its `challenge`.
pub const SLACK_CHALLENGE: &str = r#"if type == "object" and .type == "url_verification" then {challenge: .challenge} else null end"#;

/// A webhook's signature check.
#[derive(Debug, Clone)]
pub struct Verify {
    /// Which provider's signature format.
    pub scheme: VerifyScheme,
    /// The secrets, any of which may have signed (templates over `$secrets` and `$config`).
    pub secrets: Vec<Template>,
    /// How far a signed timestamp may be from now.
    pub tolerance: Duration,
}

/// The signature formats a webhook can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyScheme {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` (standardwebhooks.com).
    StandardWebhooks,
    /// The same with `svix-` headers.
    Svix,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    Github,
    /// `Stripe-Signature: t=<ts>,v1=<hex>` over `<ts>.<body>`.
    Stripe,
    /// `X-Shopify-Hmac-Sha256: <base64>` over the body.
    Shopify,
    /// `X-Slack-Signature: v0=<hex>` over `v0:<ts>:<body>`, with `X-Slack-Request-Timestamp`.
    Slack,
    /// Any HMAC in one header.
    Hmac(HmacScheme),
}

/// A generic HMAC signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacScheme {
    /// The header carrying the signature (lower case).
    pub header: String,
    /// The hash.
    pub algorithm: HmacAlgorithm,
    /// How the signature is written.
    pub base64: bool,
    /// Text before the signature.
    pub prefix: String,
    /// The header carrying a Unix timestamp, signed as `<timestamp>.<body>` (lower case).
    pub timestamp_header: Option<String>,
}

/// The hash of an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

/// Webhook de-duplication: requests with the same key within `window` start one execution.
#[derive(Debug, Clone)]
pub struct Dedupe {
    /// The jq program giving the key; `null` means the request has none.
    pub key: Expr,
    /// How long a key holds.
    pub window: Duration,
}

/// Which request bodies a webhook takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON, form or text, by content type.
    Any,
    /// Only JSON.
    Json,
    /// Only `application/x-www-form-urlencoded`.
    Form,
    /// Any body, as a string.
    Text,
}

impl BodyFormat {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Json => "json",
            Self::Form => "form",
            Self::Text => "text",
        }
    }
}

/// One step, compiled.
#[derive(Debug)]
pub struct Step {
    /// Its id, unique in the flow.
    pub id: String,
    /// What it does.
    pub kind: StepKind,
    /// How it is tried again, when the step sets it.
    pub retry: Option<RetryPolicy>,
    /// The condition under which it runs; skipped when false or null.
    pub when: Option<Expr>,
}

/// The kinds of step.
#[derive(Debug)]
pub enum StepKind {
    /// Output the single result of a jq program.
    Transform(Expr),
    /// Send an HTTP request.
    Http(Box<HttpStep>),
    /// Add a message to the execution's log.
    Log(Template),
    /// Run one of two lists of steps.
    If(Box<IfStep>),
    /// Run the steps of one case.
    Switch(Box<SwitchStep>),
    /// Run steps once per item of a list.
    ForEach(Box<ForEachStep>),
    /// Run branches of steps at the same time.
    Parallel(Vec<(String, Vec<Step>)>),
    /// Publish events onto the bus.
    Publish(Box<PublishStep>),
    /// Wait without holding a worker.
    Sleep(Sleep),
    /// Read or change persisted state.
    State(Box<StateStep>),
    /// Files under the file roots.
    Files(Box<FilesStep>),
    /// End the execution as failed.
    Fail(Box<FailStep>),
    /// Run another flow as a child execution.
    Call(Box<CallStep>),
    /// Answer the synchronous caller.
    Respond(Box<RespondStep>),
}

/// The `call` step (and a dispatch), compiled.
#[derive(Debug)]
pub struct CallStep {
    /// The flow it starts.
    pub target: CallTarget,
    /// The child's input; `None`: this execution's input.
    pub input: Option<Expr>,
    /// Whether the step waits for the child's end and takes its output.
    pub wait: bool,
}

/// The flow a `call` starts.
#[derive(Debug)]
pub enum CallTarget {
    /// A flow named in the YAML.
    Flow {
        /// Its integration.
        integration: String,
        /// Its name.
        flow: String,
    },
    /// A dispatch: a program over the request naming a flow of the same integration.
    /// The child gets this execution's trigger, and its answer is this one's.
    Dispatch(Expr),
}

/// The `respond` step, compiled.
#[derive(Debug)]
pub struct RespondStep {
    /// The status.
    pub status: ResponseStatus,
    /// The headers, by name.
    pub headers: Vec<(String, Template)>,
    /// The body; `None`: no body.
    pub body: Option<Expr>,
}

/// A `respond` status.
#[derive(Debug)]
pub enum ResponseStatus {
    /// A fixed status.
    Code(u16),
    /// A program giving the status.
    Program(Expr),
}

/// The `if` step, compiled.
#[derive(Debug)]
pub struct IfStep {
    /// The condition.
    pub condition: Expr,
    /// The steps run when it holds.
    pub then: Vec<Step>,
    /// The steps run when it does not.
    pub otherwise: Vec<Step>,
}

/// The `switch` step, compiled.
#[derive(Debug)]
pub struct SwitchStep {
    /// The value naming the case.
    pub value: Expr,
    /// The cases, by name.
    pub cases: Vec<(String, Vec<Step>)>,
    /// The steps when no case matches.
    pub default: Vec<Step>,
}

/// The `for_each` step, compiled.
#[derive(Debug)]
pub struct ForEachStep {
    /// What it goes through.
    pub source: ForEachSource,
    /// How many items run at once.
    pub concurrency: u32,
    /// The steps of each item.
    pub steps: Vec<Step>,
}

/// What a `for_each` goes through.
#[derive(Debug)]
pub enum ForEachSource {
    /// The list a program gives.
    Items(Expr),
    /// A file's rows, in batches.
    File(FileRows),
}

/// A file's rows, read as they are needed.
#[derive(Debug)]
pub struct FileRows {
    /// The file.
    pub path: Template,
    /// `csv` or `ndjson`; `None`: the extension says.
    pub format: Option<Format>,
    /// Rows per batch.
    pub batch: u32,
    /// How CSV is read.
    pub csv: CsvOptions,
}

/// The `publish` step, compiled.
#[derive(Debug)]
pub struct PublishStep {
    /// The topic.
    pub topic: Template,
    /// The events' data, one event per output; `None`: the previous step's output.
    pub data: Option<Expr>,
    /// Each event's ordering key, over its data.
    pub key: Option<Expr>,
    /// Each event's id, over its data.
    pub id: Option<Expr>,
    /// A state change committed with the events (`set` or `delete`).
    pub state: Option<StateStep>,
}

/// How long a `sleep` step waits.
#[derive(Debug)]
pub enum Sleep {
    /// This long.
    For(Duration),
    /// Until the time this gives.
    Until(Expr),
}

/// The `files` step, compiled.
#[derive(Debug)]
pub struct FilesStep {
    /// What it does.
    pub action: FilesAction,
    /// The format read or written; `None`: the file name's extension says.
    pub format: Option<Format>,
    /// How CSV is read and written.
    pub csv: CsvOptions,
}

/// What a `files` step does.
#[derive(Debug)]
pub enum FilesAction {
    /// Reads the file at a path.
    Read(Template),
    /// Writes what a program gives to a path.
    Write {
        /// The path.
        path: Template,
        /// What to write.
        data: Expr,
        /// Whether to add to the end instead of replacing.
        append: bool,
    },
    /// Lists a folder's files whose names match a pattern.
    List {
        /// The folder.
        dir: Template,
        /// The names kept.
        pattern: Option<String>,
    },
    /// Moves a file.
    Move {
        /// From where.
        from: Template,
        /// To where.
        to: Template,
    },
    /// Deletes a file.
    Delete(Template),
}

/// The `state` step, compiled.
#[derive(Debug)]
pub struct StateStep {
    /// What it does.
    pub action: StateAction,
    /// The key.
    pub key: Template,
    /// Whose state.
    pub scope: StateScope,
}

/// What a `state` step does with its key.
#[derive(Debug)]
pub enum StateAction {
    /// Reads it, with a default for a missing key.
    Get(Option<Expr>),
    /// Sets it to a value.
    Set(Expr),
    /// Deletes it.
    Delete,
}

/// Whose state a `state` step reads or changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateScope {
    /// The flow's own.
    Flow,
    /// The integration's, shared by its flows.
    Integration,
}

/// The `fail` step, compiled.
#[derive(Debug)]
pub struct FailStep {
    /// The message.
    pub message: Expr,
    /// The code; `None`: `failed`.
    pub code: Option<Expr>,
}

impl StepKind {
    /// The kind's name, as written in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Transform(_) => "transform",
            Self::Http(_) => "http",
            Self::Log(_) => "log",
            Self::If(_) => "if",
            Self::Switch(_) => "switch",
            Self::ForEach(_) => "for_each",
            Self::Parallel(_) => "parallel",
            Self::Publish(_) => "publish",
            Self::Sleep(_) => "sleep",
            Self::State(_) => "state",
            Self::Files(_) => "files",
            Self::Fail(_) => "fail",
            Self::Call(call) => match call.target {
                CallTarget::Flow { .. } => "call",
                CallTarget::Dispatch(_) => "dispatch",
            },
            Self::Respond(_) => "respond",
        }
    }
}

/// The `http` step, compiled.
#[derive(Debug)]
pub struct HttpStep {
    /// Upper-case method.
    pub method: String,
    /// The URL.
    pub url: Template,
    /// Request headers.
    pub headers: Vec<(String, Template)>,
    /// Query parameters.
    pub query: Vec<(String, Template)>,
    /// The body.
    pub body: HttpBody,
    /// How long the request may take.
    pub timeout: Duration,
    /// Non-2xx statuses that do not fail the step.
    pub accept: Vec<u16>,
    /// The header carrying `<execution id>.<step id>`, the same on every attempt;
    /// `None` when the step sends none.
    pub idempotency_header: Option<String>,
    /// How it follows pages, when it does.
    pub paginate: Option<Paginate>,
}

/// How an `http` step follows pages.
#[derive(Debug)]
pub struct Paginate {
    /// Over each answer, the changes that make the next request, or `null`.
    pub next: Expr,
    /// The most pages read.
    pub max_pages: u32,
}

/// The body of an `http` step.
#[derive(Debug)]
pub enum HttpBody {
    /// No body.
    None,
    /// A jq program whose result is sent as JSON.
    Json(Expr),
    /// A text template.
    Text(Template),
}

/// An alert rule, compiled.
#[derive(Debug)]
pub struct Alert {
    /// Its name, unique in the integration.
    pub name: String,
    /// The integration it watches.
    pub integration: String,
    /// What it means.
    pub description: Option<String>,
    /// The flow it watches; `None`: every flow of the integration.
    pub flow: Option<String>,
    /// When it fires.
    pub condition: AlertCondition,
    /// The `alert` flows started with each notification, one made for each webhook
    /// target included.
    pub notify: Vec<String>,
}

/// When an alert fires. It resolves when the condition stops holding.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertCondition {
    /// At least `count` executions failed within `within`.
    Failures {
        /// How many.
        count: u64,
        /// The window.
        within: Duration,
    },
    /// More than `above` of the executions that ended within `within` failed, once at
    /// least `min_executions` ended.
    ErrorRate {
        /// The share, from 0 to 1.
        above: f64,
        /// The window.
        within: Duration,
        /// The fewest ended executions that can fire it.
        min_executions: u64,
    },
    /// The 95th percentile of execution time within `within` is over `above`.
    P95Duration {
        /// The limit.
        above: Duration,
        /// The window.
        within: Duration,
    },
    /// The oldest waiting execution has waited more than `above`.
    QueueAge {
        /// The limit.
        above: Duration,
    },
    /// An outbound endpoint is disabled.
    EndpointDisabled {
        /// Only this tenant's endpoints.
        tenant: Option<String>,
    },
}

impl AlertCondition {
    /// The condition's name, as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Failures { .. } => "failures",
            Self::ErrorRate { .. } => "error_rate",
            Self::P95Duration { .. } => "p95_duration",
            Self::QueueAge { .. } => "queue_age",
            Self::EndpointDisabled { .. } => "endpoint_disabled",
        }
    }
}

/// The name of the flow made for an alert's webhook target number `index`. The dots keep
/// it apart from every flow a file can name.
pub fn alert_webhook_flow(alert: &str, index: usize) -> String {
    format!("alert.{alert}.webhook.{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_up_to_its_max() {
        let policy = RetryPolicy {
            jitter: false,
            ..RetryPolicy::HTTP
        };
        let waits: Vec<u64> = (1..=11)
            .map(|failed| policy.delay(failed, 0.5).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(policy.delay(200, 0.5), policy.max, "no overflow far out");
    }

    #[test]
    fn full_jitter_draws_between_zero_and_the_wait() {
        let policy = RetryPolicy::HTTP;
        assert_eq!(policy.delay(3, 0.0), Duration::ZERO);
        assert_eq!(policy.delay(3, 0.25), Duration::from_secs(1));
        assert_eq!(
            policy.delay(3, 0.999_999),
            Duration::from_secs(4).mul_f64(0.999_999)
        );
    }

    #[test]
    fn fixed_backoff_waits_the_same() {
        let policy = RetryPolicy {
            backoff: Backoff::Fixed,
            initial: Duration::from_millis(250),
            jitter: false,
            ..RetryPolicy::HTTP
        };
        assert_eq!(policy.delay(1, 0.3), policy.delay(7, 0.9));
        assert_eq!(policy.delay(7, 0.9), Duration::from_millis(250));
    }
}
