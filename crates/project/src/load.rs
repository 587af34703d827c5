//! Reading integration files and folders into a [`Project`], or every [`Problem`] found.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};
use switchboard_core::HumanDuration;
use switchboard_expr::{CompileError, Expr, Template};

use crate::model::{
    AfterFile, Backoff, BodyFormat, CallStep, CallTarget, Concurrency, ConfigVar, Debounce, Dedupe,
    DeployEvent, EventTrigger, FilesTrigger, Flow, Integration, Project, RetryPolicy,
    SLACK_CHALLENGE, Step, StepKind, SyncAnswer, Throttle, Trigger, WebhookTrigger,
};
use crate::position::{did_you_mean, scalar_position};
use crate::schedule::{
    CatchUp, DEFAULT_MAX_CATCH_UP, Overlap, ScheduleTrigger, Timing, TimingError,
};
use crate::spec::{
    EventTriggerSpec, FilesTriggerSpec, FlowSpec, IntegrationSpec, RetrySpec, ScheduleSpec,
    StepSpec, TriggerSpec, WebhookSpec,
};

/// How long a webhook's de-duplication key holds, when not given.
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How long a synchronous caller waits for the flow's answer, when not given.
pub const DEFAULT_SYNC_WAIT: Duration = Duration::from_secs(10);

/// The longest a synchronous caller may be kept waiting.
pub const MAX_SYNC_WAIT: Duration = Duration::from_secs(300);

/// The header an `http` step's idempotency key goes in, when not given.
pub const DEFAULT_IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The default timeout of an `http` step.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a `files` trigger looks at its folder, when not given.
pub const DEFAULT_FILES_EVERY: Duration = Duration::from_secs(30);

/// How many pages a paginating `http` step reads, when not given.
pub const DEFAULT_MAX_PAGES: u32 = 100;

/// The most pages a paginating `http` step may read.
pub const MAX_PAGES: u32 = 10_000;

const HTTP_METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The most attempts a retry policy may ask for.
const MAX_ATTEMPTS: u32 = 100;

/// One problem in a project, at `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// The line, from 1.
    pub line: u64,
    /// The column, from 1.
    pub column: u64,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Every problem found in a project, one per line when shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Loads and checks every integration file in `paths` (files, or folders searched for
/// `*.yaml` and `*.yml`).
pub fn load(paths: &[PathBuf]) -> Result<Project, Problems> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files, &mut problems);
    }
    let mut project = Project::default();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut calls = Vec::new();
    for file in files {
        let source = match std::fs::read_to_string(&file) {
            Ok(source) => source,
            Err(error) => {
                problems.push(Problem {
                    file,
                    line: 1,
                    column: 1,
                    message: format!("cannot read the file: {error}"),
                });
                continue;
            }
        };
        let mut checker = FileChecker {
            file: &file,
            source: &source,
            problems: Vec::new(),
            integration: String::new(),
            calls: Vec::new(),
        };
        let integration = checker.integration();
        problems.append(&mut checker.problems);
        let named = std::mem::take(&mut checker.calls);
        calls.extend(named.into_iter().map(|call| {
            let message = format!(
                "`call` names `{}/{}`, which is not a flow of the project",
                call.integration, call.flow
            );
            (checker.problem_at(&call.at, message), call)
        }));
        let Some((integration, name_at)) = integration else {
            continue;
        };
        if let Some(first) = seen.get(&integration.name) {
            problems.push(checker.problem_at(
                &name_at,
                format!(
                    "the integration name `{}` is already used by {}",
                    integration.name,
                    first.display()
                ),
            ));
            continue;
        }
        seen.insert(integration.name.clone(), file.clone());
        project
            .integrations
            .insert(integration.name.clone(), Arc::new(integration));
    }
    for (problem, call) in calls {
        if project.flow(&call.integration, &call.flow).is_none() {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(project)
    } else {
        Err(Problems(problems))
    }
}

/// Compiles one integration from its text alone (a version kept in the store), without
/// the checks that need the rest of the project (`call` targets).
pub fn compile(file: &Path, source: &str) -> Result<Integration, Problems> {
    let mut checker = FileChecker {
        file,
        source,
        problems: Vec::new(),
        integration: String::new(),
        calls: Vec::new(),
    };
    match checker.integration() {
        Some((integration, _)) if checker.problems.is_empty() => Ok(integration),
        _ => Err(Problems(checker.problems)),
    }
}

/// The integration files of a project: the files named, and the `*.yaml`/`*.yml` files
/// of the folders named (what [`load`] reads), leaving out what cannot be read.
pub fn project_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files, &mut Vec::new());
    }
    files
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    let problem = |message: String| Problem {
        file: path.to_owned(),
        line: 1,
        column: 1,
        message,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) => return problems.push(problem(format!("cannot open: {error}"))),
    };
    if metadata.is_file() {
        files.push(path.to_owned());
        return;
    }
    let before = files.len();
    collect_folder(path, files, problems);
    if files.len() == before {
        problems.push(problem(String::from(
            "no integration files (*.yaml, *.yml) in this folder",
        )));
    }
}

fn collect_folder(folder: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) => {
            return problems.push(Problem {
                file: folder.to_owned(),
                line: 1,
                column: 1,
                message: format!("cannot read the folder: {error}"),
            });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_folder(&path, files, problems);
        } else if matches!(
            path.extension().and_then(|ext| ext.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
}

/// Checks one file and compiles what is valid in it.
struct FileChecker<'a> {
    file: &'a Path,
    source: &'a str,
    problems: Vec<Problem>,
    /// The integration's name, once read.
    integration: String,
    /// The flows `call` steps name, checked once every file is loaded.
    calls: Vec<CallRef>,
}

/// A flow a `call` step names, and where.
struct CallRef {
    at: Location,
    integration: String,
    flow: String,
}

impl FileChecker<'_> {
    fn problem_at(&self, at: &Location, message: String) -> Problem {
        Problem {
            file: self.file.to_owned(),
            line: at.line().max(1),
            column: at.column().max(1),
            message,
        }
    }

    fn report(&mut self, at: &Location, message: impl Into<String>) {
        let problem = self.problem_at(at, message.into());
        self.problems.push(problem);
    }

    fn report_in_scalar(&mut self, scalar: &Spanned<String>, offset: usize, message: String) {
        let (line, column) =
            scalar_position(self.source, &scalar.referenced, &scalar.value, offset);
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line,
            column,
            message,
        });
    }

    fn report_compile_errors(
        &mut self,
        scalar: &Spanned<String>,
        what: &str,
        errors: Vec<CompileError>,
    ) {
        for error in errors {
            self.report_in_scalar(scalar, error.offset, format!("{what}: {}", error.message));
        }
    }

    fn integration(&mut self) -> Option<(Integration, Location)> {
        let spec: IntegrationSpec = match serde_saphyr::from_str(self.source) {
            Ok(spec) => spec,
            Err(error) => {
                let problem = yaml_problem(self.file, &error);
                self.problems.push(problem);
                return None;
            }
        };
        let name = spec.name.value.clone();
        self.integration = name.clone();
        if !is_name(&name) {
            self.report(
                &spec.name.referenced,
                format!("the integration name `{name}` must be lower-case letters, digits and `-`"),
            );
        }
        let config = spec
            .config
            .into_iter()
            .map(|(name, var)| ConfigVar {
                name,
                value: var.default.unwrap_or(serde_json::Value::Null),
                description: var.description,
            })
            .collect();
        if spec.flows.is_empty() {
            self.report(
                &spec.name.referenced,
                format!("the integration `{name}` has no flows"),
            );
        }
        let on_error_positions: Vec<(String, Spanned<String>)> = spec
            .flows
            .iter()
            .filter_map(|(name, flow)| Some((name.clone(), flow.value.on_error.clone()?)))
            .collect();
        let mut flows = BTreeMap::new();
        for (flow_name, flow_spec) in spec.flows {
            if let Some(flow) = self.flow(&name, &flow_name, flow_spec) {
                flows.insert(flow_name, Arc::new(flow));
            }
        }
        self.check_on_error(&flows, &on_error_positions);
        let alerts = self.alerts(&name, spec.alerts, &mut flows);
        let integration = Integration {
            name,
            description: spec.description,
            file: self.file.to_owned(),
            source: self.source.to_owned(),
            config,
            flows,
            alerts,
        };
        Some((integration, spec.name.referenced))
    }

    fn flow(&mut self, integration: &str, name: &str, spec: Spanned<FlowSpec>) -> Option<Flow> {
        let at = spec.referenced;
        let FlowSpec {
            description,
            trigger,
            steps,
            retry,
            on_error,
            timeout,
            concurrency,
            ordering,
            debounce,
            throttle,
        } = spec.value;
        let no_steps = StepRefs::NONE;
        let concurrency = concurrency.and_then(|concurrency| {
            let spec = concurrency.value;
            if spec.limit.value == 0 {
                self.report(&spec.limit.referenced, "`limit` must be at least 1");
            }
            let key = match &spec.key {
                Some(key) => Some(self.expr(key, "concurrency key", &no_steps)?),
                None => None,
            };
            Some(Concurrency {
                limit: spec.limit.value,
                key,
            })
        });
        let ordering =
            ordering.and_then(|ordering| self.expr(&ordering.value.key, "ordering key", &no_steps));
        let debounce = debounce.and_then(|debounce| {
            let spec = debounce.value;
            let key = match &spec.key {
                Some(key) => Some(self.expr(key, "debounce key", &no_steps)?),
                None => None,
            };
            let period = Duration::from(spec.period);
            if period.is_zero() {
                self.report(&debounce.referenced, "`period` must be longer than zero");
            }
            Some(Debounce { key, period })
        });
        let throttle = throttle.and_then(|throttle| {
            let spec = throttle.value;
            let Some((count, per)) = parse_rate(&spec.rate.value) else {
                self.report(
                    &spec.rate.referenced,
                    format!(
                        "`{}` is not a rate: write a count and a period, like 10/s, 100/m or 5/10s",
                        spec.rate.value
                    ),
                );
                return None;
            };
            let key = match &spec.key {
                Some(key) => Some(self.expr(key, "throttle key", &no_steps)?),
                None => None,
            };
            Some(Throttle { count, per, key })
        });
        if !is_name(name) {
            self.report(
                &at,
                format!("the flow name `{name}` must be lower-case letters, digits and `-`"),
            );
        }
        let problems_before = self.problems.len();
        let trigger = match trigger {
            Some(trigger) => self.trigger(trigger),
            None => {
                self.report(&at, format!("the flow `{name}` has no trigger"));
                None
            }
        };
        let dispatch = trigger
            .as_ref()
            .and_then(Trigger::request)
            .and_then(|request| request.dispatch.clone());
        let steps = match (steps, dispatch) {
            (None, Some(dispatch)) => vec![dispatch_step(dispatch, &trigger)],
            (Some(steps), Some(_)) => {
                self.report(
                    &steps.referenced,
                    format!("the flow `{name}` dispatches each request to another flow, so it has no steps of its own"),
                );
                Vec::new()
            }
            (steps, None) => self.steps_of(name, &at, steps),
        };
        let retry = retry.as_ref().and_then(|retry| self.retry(retry));
        let trigger = trigger?;
        (self.problems.len() == problems_before).then(|| Flow {
            integration: integration.to_owned(),
            name: name.to_owned(),
            description,
            trigger,
            steps,
            retry,
            on_error: on_error.map(|on_error| on_error.value),
            timeout: timeout.map(Duration::from),
            concurrency,
            ordering,
            debounce,
            throttle,
        })
    }

    /// A flow's steps, which it must have.
    fn steps_of(
        &mut self,
        name: &str,
        at: &Location,
        steps: Option<Spanned<Vec<StepSpec>>>,
    ) -> Vec<Step> {
        match steps {
            Some(steps) if !steps.value.is_empty() => self.flow_steps(&steps.value),
            Some(steps) => {
                self.report(&steps.referenced, format!("the flow `{name}` has no steps"));
                Vec::new()
            }
            None => {
                self.report(at, format!("the flow `{name}` has no steps"));
                Vec::new()
            }
        }
    }

    fn trigger(&mut self, spec: Spanned<TriggerSpec>) -> Option<Trigger> {
        let at = spec.referenced;
        let TriggerSpec {
            webhook,
            alert,
            error,
            event,
            invoke,
            call,
            deploy,
            schedule,
            files,
        } = spec.value;
        let kinds = [
            webhook.is_some(),
            alert.is_some(),
            error.is_some(),
            event.is_some(),
            invoke.is_some(),
            call.is_some(),
            deploy.is_some(),
            schedule.is_some(),
            files.is_some(),
        ];
        if kinds.iter().filter(|set| **set).count() != 1 {
            let message = if kinds.contains(&true) {
                "a trigger has one kind: `webhook`, `invoke`, `event`, `schedule`, `files`, `call`, `deploy`, `alert` or `error`"
            } else {
                "the trigger names no kind: write `webhook: {}`, `invoke: {}`, `event: {topic: ...}`, `schedule: {cron: ...}`, `files: {path: ...}`, `call: {}`, `deploy: {}`, `alert: {}` or `error: {}`"
            };
            self.report(&at, message);
            return None;
        }
        if alert.is_some() {
            return Some(Trigger::Alert);
        }
        if error.is_some() {
            return Some(Trigger::Error);
        }
        if call.is_some() {
            return Some(Trigger::Call);
        }
        if let Some(deploy) = deploy {
            let mut events = Vec::new();
            for event in deploy.on.as_deref().unwrap_or_default() {
                match DeployEvent::ALL
                    .into_iter()
                    .find(|known| known.as_str() == event.value)
                {
                    Some(known) => events.push(known),
                    None => self.report(
                        &event.referenced,
                        format!(
                            "`{}` is not a deploy event: use deployed, updated or removed",
                            event.value
                        ),
                    ),
                }
            }
            if deploy.on.is_none() {
                events = DeployEvent::ALL.to_vec();
            }
            return Some(Trigger::Deploy(events));
        }
        if let Some(event) = event {
            return self.event_trigger(&event).map(Trigger::Event);
        }
        if let Some(files) = files {
            return self
                .files_trigger(files)
                .map(|files| Trigger::Files(Box::new(files)));
        }
        if let Some(schedule) = schedule {
            return self
                .schedule_trigger(schedule, &at)
                .map(|schedule| Trigger::Schedule(Box::new(schedule)));
        }
        if let Some(invoke) = invoke {
            return self
                .request_trigger(invoke, &at, true)
                .map(|invoke| Trigger::Invoke(Box::new(invoke)));
        }
        let webhook = webhook?;
        self.request_trigger(webhook, &at, false)
            .map(|webhook| Trigger::Webhook(Box::new(webhook)))
    }

    /// The settings of a `webhook` or (`invoke: true`) `invoke` trigger.
    fn request_trigger(
        &mut self,
        webhook: WebhookSpec,
        at: &Location,
        invoke: bool,
    ) -> Option<WebhookTrigger> {
        let at = *at;
        let mut methods = Vec::new();
        for method in webhook.methods.unwrap_or_default() {
            let upper = method.value.to_ascii_uppercase();
            if HTTP_METHODS.contains(&upper.as_str()) {
                methods.push(upper);
            } else {
                self.report(
                    &method.referenced,
                    format!(
                        "`{}` is not an HTTP method (one of {})",
                        method.value,
                        HTTP_METHODS.join(", ")
                    ),
                );
            }
        }
        if methods.is_empty() {
            methods.push(String::from("POST"));
        }
        let accept = match webhook.accept.as_ref().map(|accept| accept.value.as_str()) {
            None | Some("any") => BodyFormat::Any,
            Some("json") => BodyFormat::Json,
            Some("form") => BodyFormat::Form,
            Some("text") => BodyFormat::Text,
            Some(other) => {
                let at = webhook
                    .accept
                    .as_ref()
                    .map_or(at, |accept| accept.referenced);
                self.report(
                    &at,
                    format!("`accept` is `{other}`; it must be one of any, json, form, text"),
                );
                BodyFormat::Any
            }
        };
        let dedupe = webhook.dedupe.as_ref().and_then(|key| {
            let refs = StepRefs::NONE;
            let key = self.expr(key, "dedupe", &refs)?;
            Some(Dedupe {
                key,
                window: webhook
                    .dedupe_window
                    .map_or(DEFAULT_DEDUPE_WINDOW, Duration::from),
            })
        });
        if webhook.dedupe.is_none() && webhook.dedupe_window.is_some() {
            self.report(&at, "`dedupe_window` goes with `dedupe`, the key");
        }
        let verify = webhook
            .verify
            .as_ref()
            .and_then(|verify| self.verify(verify));
        let challenge = webhook.challenge.as_ref().and_then(|challenge| {
            if challenge.value == "slack" {
                return Expr::compile(SLACK_CHALLENGE).ok();
            }
            let refs = StepRefs::NONE;
            self.expr(challenge, "challenge", &refs)
        });
        let sync = match webhook.mode.as_ref().map(|mode| mode.value.as_str()) {
            Some("sync") => true,
            None => invoke,
            Some("async") if !invoke => false,
            Some(other) => {
                let mode_at = webhook.mode.as_ref().map_or(at, |mode| mode.referenced);
                let message = if invoke {
                    format!(
                        "`mode` is `{other}`; an `invoke` always answers synchronously, so leave `mode` out"
                    )
                } else {
                    format!("`mode` is `{other}`; it must be `async` (the default) or `sync`")
                };
                self.report(&mode_at, message);
                invoke
            }
        };
        if !sync && (webhook.wait.is_some() || webhook.callback.is_some()) {
            self.report(
                &at,
                "`wait` and `callback` go with `mode: sync`: an asynchronous hook answers at once",
            );
        }
        let callback_secret = webhook.callback.as_ref().and_then(|callback| {
            self.template(&callback.secret, "callback secret", &StepRefs::NONE)
        });
        let wait = webhook.wait.map_or(DEFAULT_SYNC_WAIT, Duration::from);
        if wait > MAX_SYNC_WAIT {
            self.report(
                &at,
                format!(
                    "`wait` is {}; a caller waits at most {} (past it, answer 202 and call back)",
                    HumanDuration(wait),
                    HumanDuration(MAX_SYNC_WAIT)
                ),
            );
        }
        let sync = sync.then_some(SyncAnswer {
            wait,
            callback_secret,
        });
        let dispatch = webhook
            .dispatch
            .as_ref()
            .and_then(|dispatch| self.expr(dispatch, "dispatch", &StepRefs::NONE));
        Some(WebhookTrigger {
            methods,
            accept,
            dedupe,
            verify,
            challenge,
            sync,
            dispatch,
        })
    }

    fn event_trigger(&mut self, spec: &EventTriggerSpec) -> Option<EventTrigger> {
        let topic = &spec.topic;
        if !switchboard_core::topic::is_valid(&topic.value, true) {
            self.report(
                &topic.referenced,
                format!(
                    "`{}` is not a topic or pattern: {}, and `*` for any run of characters",
                    topic.value,
                    switchboard_core::topic::RULE
                ),
            );
        }
        let filter = match &spec.filter {
            Some(filter) => Some(self.expr(filter, "filter", &StepRefs::NONE)?),
            None => None,
        };
        Some(EventTrigger {
            topic: topic.value.clone(),
            filter,
        })
    }

    fn schedule_trigger(&mut self, spec: ScheduleSpec, at: &Location) -> Option<ScheduleTrigger> {
        let timing = match (&spec.cron, &spec.every) {
            (Some(cron), None) => {
                let timezone = spec.timezone.as_ref();
                let zone = timezone.map_or("UTC", |zone| zone.value.as_str());
                match Timing::cron(&cron.value, zone) {
                    Ok(timing) => Some(timing),
                    Err(error) => {
                        let at = match (&error, timezone) {
                            (TimingError::TimeZone(_), Some(zone)) => zone.referenced,
                            _ => cron.referenced,
                        };
                        self.report(&at, error.to_string());
                        None
                    }
                }
            }
            (None, Some(every)) => {
                if let Some(timezone) = &spec.timezone {
                    self.report(
                        &timezone.referenced,
                        "`timezone` goes with `cron`; `every` counts in UTC from the Unix epoch",
                    );
                }
                match Timing::every(every.value.into()) {
                    Ok(timing) => Some(timing),
                    Err(error) => {
                        self.report(&every.referenced, error.to_string());
                        None
                    }
                }
            }
            (Some(_), Some(every)) => {
                self.report(
                    &every.referenced,
                    "a schedule has `cron` or `every`, not both",
                );
                None
            }
            (None, None) => {
                self.report(
                    at,
                    "the schedule says neither when nor how often: write `cron: \"0 2 * * *\"` or `every: 15m`",
                );
                None
            }
        };
        let catch_up = self.named(spec.catch_up.as_ref(), "catch_up", &CatchUp::NAMES);
        let overlap = self.named(spec.overlap.as_ref(), "overlap", &Overlap::NAMES);
        let max_catch_up = match &spec.max_catch_up {
            Some(max) if max.value == 0 => {
                self.report(&max.referenced, "`max_catch_up` must be at least 1");
                DEFAULT_MAX_CATCH_UP
            }
            Some(max) => max.value,
            None => DEFAULT_MAX_CATCH_UP,
        };
        Some(ScheduleTrigger {
            timing: timing?,
            catch_up: catch_up.unwrap_or(CatchUp::Latest),
            max_catch_up,
            overlap: overlap.unwrap_or(Overlap::Skip),
        })
    }

    fn files_trigger(&mut self, spec: FilesTriggerSpec) -> Option<FilesTrigger> {
        let folder = |this: &mut Self, path: &Spanned<String>, what: &str| {
            let value = path.value.trim_end_matches('/');
            if value.is_empty() || value.contains("${{") {
                this.report(
                    &path.referenced,
                    format!("`{what}` is a folder under the file roots, written out (no template)"),
                );
            }
            value.to_owned()
        };
        let path = folder(self, &spec.path, "path");
        let every = match &spec.every {
            Some(every) if Duration::from(every.value) < Duration::from_secs(1) => {
                self.report(&every.referenced, "`every` must be at least 1s");
                DEFAULT_FILES_EVERY
            }
            Some(every) => every.value.into(),
            None => DEFAULT_FILES_EVERY,
        };
        let after = match spec.after.as_ref().map(|after| after.value.as_str()) {
            None | Some("move") => {
                let to = match &spec.move_to {
                    Some(to) => folder(self, to, "move_to"),
                    None => match path.rsplit_once('/') {
                        Some((parent, _)) => format!("{parent}/processed"),
                        None => String::from("processed"),
                    },
                };
                if to == path {
                    let at = spec
                        .move_to
                        .as_ref()
                        .map_or(spec.path.referenced, |to| to.referenced);
                    self.report(&at, "`move_to` must be another folder than `path`");
                }
                AfterFile::Move(to)
            }
            Some("delete") => {
                if let Some(to) = &spec.move_to {
                    self.report(&to.referenced, "`move_to` goes with `after: move`");
                }
                AfterFile::Delete
            }
            Some(other) => {
                let at = spec
                    .after
                    .as_ref()
                    .map_or(spec.path.referenced, |after| after.referenced);
                self.report(
                    &at,
                    format!("`after` is `{other}`; it must be move or delete"),
                );
                AfterFile::Delete
            }
        };
        let failed_to = spec
            .failed_to
            .as_ref()
            .map(|to| folder(self, to, "failed_to"));
        Some(FilesTrigger {
            path,
            pattern: spec.pattern.map(|pattern| pattern.value),
            every,
            after,
            failed_to,
        })
    }

    /// One of a setting's `names`, or `None` (reported when written and unknown).
    fn named<T: Copy>(
        &mut self,
        written: Option<&Spanned<String>>,
        setting: &str,
        names: &[(&'static str, T)],
    ) -> Option<T> {
        let written = written?;
        let found = names
            .iter()
            .find(|(name, _)| *name == written.value)
            .map(|(_, value)| *value);
        if found.is_none() {
            let known: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
            self.report(
                &written.referenced,
                format!(
                    "`{setting}` is `{}`; it must be one of {}",
                    written.value,
                    known.join(", ")
                ),
            );
        }
        found
    }

    /// Every `on_error` must name an `error` flow of the integration, and a flow started
    /// by `error` has none of its own (no chains of failures).
    fn check_on_error(
        &mut self,
        flows: &BTreeMap<String, Arc<Flow>>,
        on_errors: &[(String, Spanned<String>)],
    ) {
        for (flow, target) in on_errors {
            let message = match flows.get(&target.value) {
                None => {
                    let hint = did_you_mean(&target.value, flows.keys().map(String::as_str))
                        .map(|known| format!("; did you mean `{known}`?"))
                        .unwrap_or_default();
                    format!(
                        "`on_error` names `{}`, which is not a flow of this integration{hint}",
                        target.value
                    )
                }
                Some(known) if !matches!(known.trigger, Trigger::Error) => format!(
                    "`on_error` names `{}`, which is not started by errors: give it `trigger: {{ error: {{}} }}`",
                    target.value
                ),
                Some(_)
                    if flows
                        .get(flow)
                        .is_some_and(|own| matches!(own.trigger, Trigger::Error)) =>
                {
                    format!(
                        "`{flow}` is started by errors, so it cannot have an `on_error` of its own"
                    )
                }
                Some(_) => continue,
            };
            self.report(&target.referenced, message);
        }
    }

    /// A retry policy; unset fields take the `http` default.
    fn retry(&mut self, spec: &Spanned<RetrySpec>) -> Option<RetryPolicy> {
        let defaults = RetryPolicy::HTTP;
        let retry = &spec.value;
        let problems_before = self.problems.len();
        let attempts = retry
            .attempts
            .as_ref()
            .map_or(defaults.attempts, |attempts| {
                if !(1..=MAX_ATTEMPTS).contains(&attempts.value) {
                    self.report(
                        &attempts.referenced,
                        format!(
                            "`attempts` is {}; it must be from 1 to {MAX_ATTEMPTS}",
                            attempts.value
                        ),
                    );
                }
                attempts.value
            });
        let backoff = match retry.backoff.as_ref().map(|backoff| backoff.value.as_str()) {
            None | Some("exponential") => Backoff::Exponential,
            Some("fixed") => Backoff::Fixed,
            Some(other) => {
                let at = retry
                    .backoff
                    .as_ref()
                    .map_or(spec.referenced, |backoff| backoff.referenced);
                self.report(
                    &at,
                    format!("`backoff` is `{other}`; it must be exponential or fixed"),
                );
                Backoff::Exponential
            }
        };
        let initial = retry.initial.map_or(defaults.initial, Duration::from);
        let max = retry.max.map_or(defaults.max.max(initial), Duration::from);
        if initial.is_zero() {
            self.report(&spec.referenced, "`initial` must be longer than zero");
        }
        if max < initial {
            self.report(&spec.referenced, "`max` must not be shorter than `initial`");
        }
        (self.problems.len() == problems_before).then_some(RetryPolicy {
            attempts,
            backoff,
            initial,
            max,
            jitter: retry.jitter.unwrap_or(defaults.jitter),
        })
    }

    fn expr(&mut self, program: &Spanned<String>, what: &str, refs: &StepRefs<'_>) -> Option<Expr> {
        match Expr::compile(&program.value) {
            Ok(expr) => {
                self.check_step_refs(program, 0, &expr, refs);
                Some(expr)
            }
            Err(errors) => {
                self.report_compile_errors(program, what, errors);
                None
            }
        }
    }

    fn template(
        &mut self,
        text: &Spanned<String>,
        what: &str,
        refs: &StepRefs<'_>,
    ) -> Option<Template> {
        match Template::compile(&text.value) {
            Ok(template) => {
                for (offset, expr) in template.expressions() {
                    self.check_step_refs(text, offset, expr, refs);
                }
                Some(template)
            }
            Err(errors) => {
                self.report_compile_errors(text, what, errors);
                None
            }
        }
    }

    fn check_step_refs(
        &mut self,
        scalar: &Spanned<String>,
        base: usize,
        expr: &Expr,
        refs: &StepRefs<'_>,
    ) {
        for (name, offset) in expr.step_references() {
            let message = if refs.earlier.contains(&name) {
                continue;
            } else if name == refs.step {
                format!("the step `{name}` reads its own output `$steps.{name}`")
            } else if let Some((_, in_loop)) = refs.all.iter().find(|(id, _)| *id == name) {
                if *in_loop {
                    format!(
                        "`$steps.{name}` is the output of a step inside a `for_each`, read only by the steps after it in the same loop; outside, read the loop's output (each item's last output)"
                    )
                } else {
                    format!(
                        "`$steps.{name}` is read before the step `{name}` runs (it comes later in the flow)"
                    )
                }
            } else {
                match did_you_mean(&name, refs.earlier.iter().map(String::as_str)) {
                    Some(suggestion) => format!(
                        "unknown step `{name}` in `$steps.{name}`; did you mean `{suggestion}`?"
                    ),
                    None => format!("unknown step `{name}` in `$steps.{name}`"),
                }
            };
            self.report_in_scalar(scalar, base + offset, message);
        }
        if !refs.in_loop {
            for variable in ["$item", "$index"] {
                if let Some(offset) = expr.reads_variable(variable) {
                    self.report_in_scalar(
                        scalar,
                        base + offset,
                        format!("`{variable}` is only bound inside the steps of a `for_each`"),
                    );
                }
            }
        }
    }
}

/// What the expressions of one step may read in `$steps`.
struct StepRefs<'a> {
    /// The step's own id.
    step: &'a str,
    /// The steps that have run before it.
    earlier: &'a [String],
    /// Every step of the flow, with whether it is inside a `for_each`.
    all: &'a [(String, bool)],
    /// Whether it is inside a `for_each` (`$item` and `$index` are bound).
    in_loop: bool,
}

impl StepRefs<'static> {
    /// For expressions outside the steps (keys, triggers, alerts): no step has run.
    const NONE: Self = Self {
        step: "",
        earlier: &[],
        all: &[],
        in_loop: false,
    };
}

/// A YAML or shape error as a problem, with a "did you mean" for unknown fields.
fn yaml_problem(file: &Path, error: &serde_saphyr::Error) -> Problem {
    let (line, column) = error
        .location()
        .map_or((1, 1), |at| (at.line().max(1), at.column().max(1)));
    let rendered = error.render_with_options(
        serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off },
    );
    let mut message = strip_location_suffix(&rendered).to_owned();
    if let Some(hint) = unknown_field_hint(&message) {
        message.push_str(&hint);
    }
    Problem {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// serde-saphyr ends a plain message with ` at line L, column C`; the problem says it already.
fn strip_location_suffix(message: &str) -> &str {
    let message = message.trim();
    match message.rfind(" at line ") {
        Some(index) if message[index..].contains("column") => message[..index].trim_end(),
        _ => message,
    }
}

/// For "unknown field `x`, expected one of a, b", the closest expected field.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let unknown = rest.split('`').next()?;
    let expected = rest.split_once("expected one of ")?.1;
    let candidates: Vec<&str> = expected
        .split(',')
        .map(|field| field.trim().trim_matches('`'))
        .collect();
    did_you_mean(unknown, candidates).map(|suggestion| format!("; did you mean `{suggestion}`?"))
}

/// A rate such as `10/s`, `100/m` or `5/10s`: a positive count per a positive period.
fn parse_rate(text: &str) -> Option<(u32, Duration)> {
    let (count, per) = text.trim().split_once('/')?;
    let count: u32 = count.trim().parse().ok().filter(|count| *count > 0)?;
    let per = per.trim();
    let per = if per.starts_with(|c: char| c.is_ascii_digit()) {
        per.to_owned()
    } else {
        format!("1{per}")
    };
    let per = Duration::from(per.parse::<switchboard_core::HumanDuration>().ok()?);
    (!per.is_zero()).then_some((count, per))
}

/// The one step of a dispatching flow: it starts the flow `dispatch` names with this
/// execution's trigger and input, and waits for it when the caller waits.
fn dispatch_step(dispatch: Expr, trigger: &Option<Trigger>) -> Step {
    let wait = trigger
        .as_ref()
        .and_then(Trigger::request)
        .is_some_and(|request| request.sync.is_some());
    Step {
        id: String::from("dispatch"),
        kind: StepKind::Call(Box::new(CallStep {
            target: CallTarget::Dispatch(dispatch),
            input: None,
            wait,
        })),
        retry: None,
        when: None,
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

fn is_step_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

mod alerts;
mod steps;
#[cfg(test)]
mod tests;
mod verify;
