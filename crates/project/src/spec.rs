//! The grammar of an integration file, as serde reads it.
//!
//! Every struct refuses unknown fields. Values that are checked after parsing carry their
//! position ([`Spanned`]) so a problem can name `file:line:column`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;
use switchboard_core::HumanDuration;

/// One integration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSpec {
    /// The integration's name: lower-case letters, digits and `-`, unique in the project.
    pub name: Spanned<String>,
    /// What the integration is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Variables the flows read as `$config.<name>`, with their defaults.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigVarSpec>,
    /// The flows, by name.
    #[serde(default)]
    pub flows: BTreeMap<String, Spanned<FlowSpec>>,
    /// Alert rules, by name.
    #[serde(default)]
    pub alerts: BTreeMap<String, Spanned<AlertSpec>>,
}

/// One `config` variable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigVarSpec {
    /// The value used when nothing overrides it (any YAML value).
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// What the variable means.
    #[serde(default)]
    pub description: Option<String>,
}

/// One flow: a trigger and the steps it runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// What the flow does.
    #[serde(default)]
    pub description: Option<String>,
    /// What starts the flow; exactly one kind.
    #[serde(default)]
    pub trigger: Option<Spanned<TriggerSpec>>,
    /// The steps, run in order.
    #[serde(default)]
    pub steps: Option<Spanned<Vec<StepSpec>>>,
    /// How failed steps are tried again, unless a step sets its own.
    #[serde(default)]
    pub retry: Option<Spanned<RetrySpec>>,
    /// A flow with an `error` trigger, started with the failed execution when this one
    /// fails for good.
    #[serde(default)]
    pub on_error: Option<Spanned<String>>,
    /// The most time an execution may take from acceptance to end, retries included.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// At most `limit` executions of the flow run at once (per `key`, when given).
    #[serde(default)]
    pub concurrency: Option<Spanned<ConcurrencySpec>>,
    /// Executions with the same `key` run one after another, in arrival order.
    #[serde(default)]
    pub ordering: Option<Spanned<OrderingSpec>>,
    /// Of executions with the same `key` arriving less than `period` apart, only the
    /// last runs, `period` after it arrived.
    #[serde(default)]
    pub debounce: Option<Spanned<DebounceSpec>>,
    /// At most `rate` (`10/s`, `100/m`, `5/10s`) executions with the same `key` start.
    #[serde(default)]
    pub throttle: Option<Spanned<ThrottleSpec>>,
}

/// The `debounce` of a flow.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebounceSpec {
    /// A jq program giving the group (default: the whole flow).
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// How long the flow waits for a later execution of the group.
    pub period: HumanDuration,
}

/// The `throttle` of a flow.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSpec {
    /// How many starts per period: `10/s`, `100/m`, `1000/h`, `5/10s`.
    pub rate: Spanned<String>,
    /// A jq program giving the group (default: the whole flow).
    #[serde(default)]
    pub key: Option<Spanned<String>>,
}

/// The `concurrency` of a flow.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    /// How many may run at once.
    pub limit: Spanned<u32>,
    /// A jq program giving the group an execution counts in (default: the whole flow).
    #[serde(default)]
    pub key: Option<Spanned<String>>,
}

/// The `ordering` of a flow.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderingSpec {
    /// A jq program giving the sequence an execution belongs to (`.customer_id`).
    pub key: Spanned<String>,
}

/// How a failed step is tried again. Unset fields take the `http` default: 5 attempts,
/// exponential from 1s to 5m, with jitter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included.
    #[serde(default)]
    pub attempts: Option<Spanned<u32>>,
    /// `exponential` or `fixed`.
    #[serde(default)]
    pub backoff: Option<Spanned<String>>,
    /// The first wait.
    #[serde(default)]
    pub initial: Option<HumanDuration>,
    /// The longest wait.
    #[serde(default)]
    pub max: Option<HumanDuration>,
    /// Whether waits are drawn at random up to their length.
    #[serde(default)]
    pub jitter: Option<bool>,
}

/// What starts a flow. Exactly one field is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// An HTTP request to `/hooks/<integration>/<flow>`.
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
    /// An alert of the integration that fires or resolves and names this flow in `notify`.
    #[serde(default)]
    pub alert: Option<AlertTriggerSpec>,
    /// A flow of the integration that names this one in `on_error` failed.
    #[serde(default)]
    pub error: Option<AlertTriggerSpec>,
    /// An event on the built-in bus.
    #[serde(default)]
    pub event: Option<EventTriggerSpec>,
    /// A synchronous call at `/invoke/<integration>/<flow>`: the caller waits for the
    /// answer. It takes a webhook's settings, and answers as `mode: sync`.
    #[serde(default)]
    pub invoke: Option<WebhookSpec>,
    /// Only other flows start it, with a `call` step or a dispatch.
    #[serde(default)]
    pub call: Option<AlertTriggerSpec>,
    /// The integration was deployed for the first time, changed, or removed.
    #[serde(default)]
    pub deploy: Option<DeploySpec>,
    /// A cron pattern or an interval.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// New files in a folder under the file roots.
    #[serde(default)]
    pub files: Option<FilesTriggerSpec>,
}

/// The `files` trigger: each new file in `path` whose name matches `pattern` starts one
/// execution, once its size has stopped changing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesTriggerSpec {
    /// The folder watched, under the file roots.
    pub path: Spanned<String>,
    /// The names taken (`*.csv`; default every file).
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    /// How often the folder is looked at (default 30s).
    #[serde(default)]
    pub every: Option<Spanned<HumanDuration>>,
    /// What happens to a file once its execution succeeded: `move` (default) or `delete`.
    #[serde(default)]
    pub after: Option<Spanned<String>>,
    /// With `after: move`: the folder it goes to (default `processed`, beside `path`).
    #[serde(default)]
    pub move_to: Option<Spanned<String>>,
    /// The folder a file goes to when its execution failed (default: it stays, and is
    /// not taken again).
    #[serde(default)]
    pub failed_to: Option<Spanned<String>>,
}

/// The `schedule` trigger: exactly one of `cron` and `every`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// A cron pattern: 5 fields (minute to weekday) or 6 (seconds first), with `L`,
    /// `W`, `#`, and nicknames such as `@daily`.
    #[serde(default)]
    pub cron: Option<Spanned<String>>,
    /// The IANA time zone the pattern is read in (default `UTC`).
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// An interval (`15m`), counted from the Unix epoch in UTC.
    #[serde(default)]
    pub every: Option<Spanned<HumanDuration>>,
    /// Fires missed while no process ran: `none`, `latest` (default) or `all`.
    #[serde(default)]
    pub catch_up: Option<Spanned<String>>,
    /// The most missed fires `catch_up: all` runs (default 100): the latest ones.
    #[serde(default)]
    pub max_catch_up: Option<Spanned<u32>>,
    /// A fire while an earlier run has not ended: `skip` (default), `queue` or `allow`.
    #[serde(default)]
    pub overlap: Option<Spanned<String>>,
}

/// The `deploy` trigger.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// Which of `deployed`, `updated` and `removed` start the flow (default: all three).
    #[serde(default)]
    pub on: Option<Vec<Spanned<String>>>,
}

/// The `event` trigger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTriggerSpec {
    /// The topic (`order.created`), or a pattern with `*` (`order.*`).
    pub topic: Spanned<String>,
    /// A jq condition over the event's data; events for which it is false or null do
    /// not start the flow.
    #[serde(default)]
    pub filter: Option<Spanned<String>>,
}

/// The `alert` and `error` triggers; they take no settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTriggerSpec {}

/// The `webhook` trigger.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// The HTTP methods the hook answers (default `[POST]`).
    #[serde(default)]
    pub methods: Option<Vec<Spanned<String>>>,
    /// The bodies the hook takes: `any` (default: JSON, form or text by content type),
    /// `json`, `form` or `text`.
    #[serde(default)]
    pub accept: Option<Spanned<String>>,
    /// A jq program giving each request's de-duplication key (`.id`,
    /// `$trigger.headers["x-request-id"]`); a request whose key was seen within
    /// `dedupe_window` is answered with the first execution and not run again.
    #[serde(default)]
    pub dedupe: Option<Spanned<String>>,
    /// How long a key holds (default `24h`).
    #[serde(default)]
    pub dedupe_window: Option<HumanDuration>,
    /// How the sender's signature is checked; a request that fails is refused.
    #[serde(default)]
    pub verify: Option<Spanned<VerifySpec>>,
    /// A provider's handshake: `slack`, or a jq program over the request that gives the
    /// answer (a string is sent as text, anything else as JSON) or `null` for a request
    /// that is not a handshake. A handshake is answered `200` and starts nothing.
    #[serde(default)]
    pub challenge: Option<Spanned<String>>,
    /// `async` (default): the caller gets `202` once the request is durable; `sync`: the
    /// caller waits for the flow's answer, as with `invoke`.
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    /// How long a synchronous caller waits before getting `202` (default `10s`).
    #[serde(default)]
    pub wait: Option<HumanDuration>,
    /// How the answer is signed when it is posted to the caller's callback URL.
    #[serde(default)]
    pub callback: Option<CallbackSpec>,
    /// A jq program over the request giving the name of a flow of this integration that
    /// handles it; the flow then has no steps of its own.
    #[serde(default)]
    pub dispatch: Option<Spanned<String>>,
}

/// The `callback` of a synchronous trigger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSpec {
    /// The Standard Webhooks secret (`whsec_…`) the callback is signed with, a template
    /// (`${{ $secrets.CALLBACK_SECRET }}`).
    pub secret: Spanned<String>,
}

/// The `verify` of a webhook trigger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// `standard-webhooks`, `svix`, `github`, `stripe`, `shopify`, `slack` or `hmac`.
    pub scheme: Spanned<String>,
    /// The signing secret, a template (`${{ $secrets.GITHUB_SECRET }}`).
    #[serde(default)]
    pub secret: Option<Spanned<String>>,
    /// Several secrets, any of which may sign (rotation).
    #[serde(default)]
    pub secrets: Option<Vec<Spanned<String>>>,
    /// How old (or early) a signed timestamp may be (default `5m`).
    #[serde(default)]
    pub tolerance: Option<HumanDuration>,
    /// `hmac` only: the header carrying the signature.
    #[serde(default)]
    pub header: Option<Spanned<String>>,
    /// `hmac` only: `sha1`, `sha256` (default) or `sha512`.
    #[serde(default)]
    pub algorithm: Option<Spanned<String>>,
    /// `hmac` only: `hex` (default) or `base64`.
    #[serde(default)]
    pub encoding: Option<Spanned<String>>,
    /// `hmac` only: text before the signature in the header (`sha256=`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// `hmac` only: a header with a Unix timestamp; the signed content is then
    /// `<timestamp>.<body>` and the timestamp must be within `tolerance`.
    #[serde(default)]
    pub timestamp_header: Option<Spanned<String>>,
}

/// One step. `id` and exactly one kind field are set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The step's id, unique in the flow; its output is `$steps.<id>`.
    pub id: Spanned<String>,
    /// What the step does, for a person.
    #[serde(default)]
    pub description: Option<String>,
    /// A jq program; the step's output is its single result.
    #[serde(default)]
    pub transform: Option<Spanned<String>>,
    /// An HTTP request.
    #[serde(default)]
    pub http: Option<Spanned<HttpSpec>>,
    /// A message (a `${{ }}` template) for the execution's log.
    #[serde(default)]
    pub log: Option<Spanned<String>>,
    /// Runs `then` or `else` by a condition.
    #[serde(default, rename = "if")]
    pub if_: Option<Spanned<IfSpec>>,
    /// Runs the steps of the case a value names.
    #[serde(default)]
    pub switch: Option<Spanned<SwitchSpec>>,
    /// Runs steps once per item of a list.
    #[serde(default)]
    pub for_each: Option<Spanned<ForEachSpec>>,
    /// Runs branches of steps at the same time.
    #[serde(default)]
    pub parallel: Option<Spanned<ParallelSpec>>,
    /// Publishes events onto the built-in bus.
    #[serde(default)]
    pub publish: Option<Spanned<PublishSpec>>,
    /// Waits, holding no worker: a duration (`10m`) or `{until: <jq timestamp>}`.
    #[serde(default)]
    pub sleep: Option<Spanned<SleepSpec>>,
    /// Reads or changes the flow's (or integration's) persisted state.
    #[serde(default)]
    pub state: Option<Spanned<StateSpec>>,
    /// Ends the execution as failed, on purpose.
    #[serde(default)]
    pub fail: Option<Spanned<FailSpec>>,
    /// Runs another flow as a child execution.
    #[serde(default)]
    pub call: Option<Spanned<CallSpec>>,
    /// Answers the synchronous caller and goes on.
    #[serde(default)]
    pub respond: Option<Spanned<RespondSpec>>,
    /// Reads, writes, lists, moves or deletes files under the file roots.
    #[serde(default)]
    pub files: Option<Spanned<FilesSpec>>,
    /// A jq condition: when it is false (or null) the step is skipped.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// How the step is tried again when it fails in a way that may pass.
    #[serde(default)]
    pub retry: Option<Spanned<RetrySpec>>,
}

/// The `call` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// The flow: `name` in this integration, or `integration/name`.
    pub flow: Spanned<String>,
    /// A jq program giving the child's input (default: this execution's input, `.`).
    #[serde(default)]
    pub input: Option<Spanned<String>>,
    /// Whether to wait for the child and take its output (default `true`); `false`
    /// starts it and goes on.
    #[serde(default)]
    pub wait: Option<bool>,
}

/// The `respond` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondSpec {
    /// The HTTP status: a number, or a jq program giving one (default `200`).
    #[serde(default)]
    pub status: Option<Spanned<StatusSpec>>,
    /// Answer headers; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// A jq program giving the body: a string is sent as text, anything else as JSON
    /// (default: no body).
    #[serde(default)]
    pub body: Option<Spanned<String>>,
}

/// A `respond` status: a number, or a jq program.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// A fixed status.
    Code(u16),
    /// A jq program giving the status.
    Program(String),
}

/// The `if` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfSpec {
    /// A jq condition; anything but `false` and `null` runs `then`.
    pub condition: Spanned<String>,
    /// The steps run when it holds.
    pub then: Spanned<Vec<StepSpec>>,
    /// The steps run when it does not.
    #[serde(default, rename = "else")]
    pub else_: Vec<StepSpec>,
}

/// The `switch` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSpec {
    /// A jq program whose value (a string as is, anything else as JSON text) names the case.
    pub value: Spanned<String>,
    /// The steps of each case.
    pub cases: BTreeMap<String, Vec<StepSpec>>,
    /// The steps run when no case matches.
    #[serde(default)]
    pub default: Vec<StepSpec>,
}

/// The `for_each` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForEachSpec {
    /// A jq program giving the list; each item is `$item`, its position `$index`.
    #[serde(default)]
    pub items: Option<Spanned<String>>,
    /// Instead of `items`: the rows of a CSV or NDJSON file, read as they are needed in
    /// batches, so a file of any size runs in bounded memory; each batch (a list of
    /// rows) is `$item`.
    #[serde(default)]
    pub file: Option<Spanned<ForEachFileSpec>>,
    /// How many items run at once (default 1).
    #[serde(default)]
    pub concurrency: Option<Spanned<u32>>,
    /// The steps run for each item.
    pub steps: Spanned<Vec<StepSpec>>,
}

/// `for_each: { file: ... }`: a file's rows, in batches.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForEachFileSpec {
    /// The file, a `${{ }}` template under the file roots.
    pub path: Spanned<String>,
    /// `csv` or `ndjson` (default: the file name's extension).
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    /// Rows per batch (default 100).
    #[serde(default)]
    pub batch: Option<Spanned<u32>>,
    /// How CSV is read.
    #[serde(default)]
    pub csv: Option<CsvSpec>,
}

/// The `parallel` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParallelSpec {
    /// The branches, by name.
    pub branches: Spanned<BTreeMap<String, Vec<StepSpec>>>,
}

/// The `publish` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    /// The topic (`order.created`), a `${{ }}` template.
    pub topic: Spanned<String>,
    /// A jq program giving the event's data; each output is one event (default: the
    /// output of the step before).
    #[serde(default)]
    pub data: Option<Spanned<String>>,
    /// A jq program over each event's data giving its ordering key.
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// A jq program over each event's data giving its id (an id already on the bus is
    /// published once).
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    /// A state change (`set` with `value`, or `delete`) committed with the events, in
    /// one transaction: a polling cursor that moves exactly when its events are out.
    #[serde(default)]
    pub state: Option<Spanned<StateSpec>>,
}

/// The `sleep` step: `10m`, or `{until: <jq>}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SleepSpec {
    /// How long.
    For(HumanDuration),
    /// Until a time.
    Until(SleepUntilSpec),
}

/// `sleep: {until: ...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepUntilSpec {
    /// A jq program giving an RFC 3339 time or Unix seconds.
    pub until: Spanned<String>,
}

/// The `state` step. Exactly one of `get`, `set` and `delete` is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// Reads a key (a `${{ }}` template); the output is its value, else `default`.
    #[serde(default)]
    pub get: Option<Spanned<String>>,
    /// Sets a key to `value`.
    #[serde(default)]
    pub set: Option<Spanned<String>>,
    /// Deletes a key.
    #[serde(default)]
    pub delete: Option<Spanned<String>>,
    /// With `set`: a jq program giving the value.
    #[serde(default)]
    pub value: Option<Spanned<String>>,
    /// With `get`: a jq program giving the value of a missing key (default `null`).
    #[serde(default)]
    pub default: Option<Spanned<String>>,
    /// `flow` (default): this flow's own; `integration`: shared by its flows.
    #[serde(default)]
    pub scope: Option<Spanned<String>>,
}

/// The `files` step: exactly one of `read`, `write`, `list`, `move` and `delete`, each
/// naming a path (a `${{ }}` template) under the file roots.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSpec {
    /// Reads a file; the output is its content in `format`.
    #[serde(default)]
    pub read: Option<Spanned<String>>,
    /// Writes `data` to a file in `format` (replacing it atomically, or with `append`).
    #[serde(default)]
    pub write: Option<Spanned<String>>,
    /// Lists a folder's files: `[{name, path, size, modified_at}]`.
    #[serde(default)]
    pub list: Option<Spanned<String>>,
    /// Moves a file to `to`.
    #[serde(default, rename = "move")]
    pub move_: Option<Spanned<String>>,
    /// Deletes a file.
    #[serde(default)]
    pub delete: Option<Spanned<String>>,
    /// With `move`: where to.
    #[serde(default)]
    pub to: Option<Spanned<String>>,
    /// With `write`: a jq program giving what to write (a list of rows for CSV and NDJSON).
    #[serde(default)]
    pub data: Option<Spanned<String>>,
    /// With `write`: add to the end of the file instead of replacing it.
    #[serde(default)]
    pub append: Option<bool>,
    /// With `list`: names to keep (`*.csv`; `*` any run of characters, `?` one).
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    /// `csv`, `json`, `ndjson`, `xml` or `text` (default: the file name's extension).
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    /// How CSV is read and written.
    #[serde(default)]
    pub csv: Option<CsvSpec>,
}

/// CSV settings of a `files` step or trigger.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSpec {
    /// The field separator, one character (default `,`).
    #[serde(default)]
    pub delimiter: Option<Spanned<String>>,
    /// The quote character (default `"`).
    #[serde(default)]
    pub quote: Option<Spanned<String>>,
    /// Whether the first row names the columns (default `true`).
    #[serde(default)]
    pub header: Option<bool>,
    /// The columns written, in order (default: the first row's keys).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

/// The `fail` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailSpec {
    /// A jq program giving the error message.
    pub message: Spanned<String>,
    /// A jq program giving the error code (default `failed`).
    #[serde(default)]
    pub code: Option<Spanned<String>>,
}

/// The `http` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// The method (default `GET`).
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    /// The URL, a `${{ }}` template.
    pub url: Spanned<String>,
    /// Request headers; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// Query parameters added to the URL; values are templates.
    #[serde(default)]
    pub query: BTreeMap<String, Spanned<String>>,
    /// A jq program whose result is sent as the JSON body.
    #[serde(default)]
    pub json: Option<Spanned<String>>,
    /// A text body, a template.
    #[serde(default)]
    pub body: Option<Spanned<String>>,
    /// How long the request may take (default `30s`).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Non-2xx statuses that do not fail the step, e.g. `[404]`.
    #[serde(default)]
    pub accept: Vec<u16>,
    /// Whether the request carries an idempotency key (default `true`).
    #[serde(default)]
    pub idempotency: Option<bool>,
    /// The header that carries it (default `Idempotency-Key`).
    #[serde(default)]
    pub idempotency_header: Option<Spanned<String>>,
    /// Follows an API's pages, collecting every answer.
    #[serde(default)]
    pub paginate: Option<PaginateSpec>,
}

/// `paginate` of an `http` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaginateSpec {
    /// A jq program over each answer (`{status, headers, body}`) giving the next request
    /// (an object of `url`, `query`, `headers`, `json`, each changing the request before),
    /// or `null` when there is no next page.
    pub next: Spanned<String>,
    /// The most pages read (default 100); past it the output's `next` is the request
    /// not sent, for a later run to go on from.
    #[serde(default)]
    pub max_pages: Option<Spanned<u32>>,
}

/// One alert rule: a condition watched over the integration's executions, and whom to
/// tell when it starts and stops holding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// What the alert means, for a person.
    #[serde(default)]
    pub description: Option<String>,
    /// The flow watched; every flow of the integration when not given.
    #[serde(default)]
    pub flow: Option<Spanned<String>>,
    /// The condition; exactly one field is set.
    pub when: Spanned<ConditionSpec>,
    /// Where notifications go: webhooks and `alert` flows.
    pub notify: Spanned<Vec<Spanned<NotifySpec>>>,
}

/// An alert's condition. Exactly one field is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// At least `count` executions failed within the window.
    #[serde(default)]
    pub failures: Option<FailuresSpec>,
    /// More than `above` (0 to 1) of the executions that ended within the window failed.
    #[serde(default)]
    pub error_rate: Option<ErrorRateSpec>,
    /// The 95th percentile of execution time (acceptance to end) within the window is over `above`.
    #[serde(default)]
    pub p95_duration: Option<DurationOverSpec>,
    /// The oldest execution waiting for a worker has waited more than `above`.
    #[serde(default)]
    pub queue_age: Option<QueueAgeSpec>,
    /// An outbound webhook endpoint is disabled (optionally only a tenant's).
    #[serde(default)]
    pub endpoint_disabled: Option<EndpointDisabledSpec>,
}

/// The `endpoint_disabled` condition.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDisabledSpec {
    /// Only this tenant's endpoints.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// The `failures` condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailuresSpec {
    /// How many failures fire the alert.
    pub count: Spanned<u64>,
    /// The window looked back over.
    pub within: HumanDuration,
}

/// The `error_rate` condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRateSpec {
    /// The share of failed executions above which the alert fires, from 0 to 1.
    pub above: Spanned<f64>,
    /// The window looked back over.
    pub within: HumanDuration,
    /// Fewer ended executions than this in the window never fire (default 10).
    #[serde(default)]
    pub min_executions: Option<u64>,
}

/// The `p95_duration` condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurationOverSpec {
    /// The duration above which the alert fires.
    pub above: HumanDuration,
    /// The window looked back over.
    pub within: HumanDuration,
}

/// The `queue_age` condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueAgeSpec {
    /// The wait above which the alert fires.
    pub above: HumanDuration,
}

/// One notification target. Exactly one of `webhook` and `flow` is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// A URL (a `${{ }}` template) the alert is POSTed to as JSON.
    #[serde(default)]
    pub webhook: Option<Spanned<String>>,
    /// Headers of the webhook request; values are templates (`${{ $secrets.TOKEN }}`).
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// A flow of the integration with an `alert` trigger, started with the alert as input.
    #[serde(default)]
    pub flow: Option<Spanned<String>>,
}
