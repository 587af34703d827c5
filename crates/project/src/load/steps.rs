//! Compiling a flow's steps: one kind per step, ids unique in the whole flow, `$steps`
//! read only where the step read has run, and the blocks that hold steps of their own
//! (`if`, `switch`, `for_each`, `parallel`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};
use switchboard_core::topic;
use switchboard_expr::Template;
use switchboard_files::Format;
use switchboard_files::format::CsvOptions;

use super::{
    CallRef, DEFAULT_HTTP_TIMEOUT, DEFAULT_IDEMPOTENCY_HEADER, DEFAULT_MAX_PAGES, FileChecker,
    HTTP_METHODS, MAX_PAGES, StepRefs, is_name, is_step_id,
};
use crate::model::{
    CallStep, CallTarget, FailStep, FileRows, FilesAction, FilesStep, ForEachSource, ForEachStep,
    HttpBody, HttpStep, IfStep, Paginate, PublishStep, RespondStep, ResponseStatus, Sleep,
    StateAction, StateScope, StateStep, Step, StepKind, SwitchStep,
};
use crate::spec::{
    CallSpec, CsvSpec, FailSpec, FilesSpec, ForEachFileSpec, ForEachSpec, HttpSpec, IfSpec,
    PublishSpec, RespondSpec, SleepSpec, StateSpec, StatusSpec, StepSpec, SwitchSpec,
};

/// Every kind of step, as written in YAML.
const STEP_KINDS: [&str; 14] = [
    "transform",
    "http",
    "log",
    "if",
    "switch",
    "for_each",
    "parallel",
    "publish",
    "sleep",
    "state",
    "fail",
    "call",
    "respond",
    "files",
];

/// Rows per batch of a `for_each` over a file, when not given.
const DEFAULT_BATCH: u32 = 100;

/// The most rows per batch of a `for_each` over a file.
const MAX_BATCH: u32 = 10_000;

/// The most items of a `for_each` that may run at once.
const MAX_CONCURRENCY: u32 = 1000;

/// What the steps of one list may read: the steps that ran before the list, and whether
/// the list is inside a `for_each`.
struct Block<'a> {
    outer: &'a [String],
    in_loop: bool,
    all: &'a [(String, bool)],
}

impl FileChecker<'_> {
    /// Compiles a flow's steps.
    pub(super) fn flow_steps(&mut self, specs: &[StepSpec]) -> Vec<Step> {
        let mut all = Vec::new();
        collect_ids(specs, false, &mut all);
        let mut seen: BTreeMap<String, Location> = BTreeMap::new();
        self.check_ids(specs, &mut seen);
        let block = Block {
            outer: &[],
            in_loop: false,
            all: &all,
        };
        self.steps(specs, &block).0
    }

    /// Every id well-formed and used once in the flow.
    fn check_ids(&mut self, specs: &[StepSpec], seen: &mut BTreeMap<String, Location>) {
        for spec in specs {
            let id = &spec.id.value;
            if !is_step_id(id) {
                self.report(
                    &spec.id.referenced,
                    format!("the step id `{id}` must start with a letter or `_` and hold only letters, digits, `_` and `-`"),
                );
            }
            if let Some(first) = seen.get(id) {
                let message = format!(
                    "the step id `{id}` is used twice (first at line {}); ids are unique in the whole flow",
                    first.line()
                );
                self.report(&spec.id.referenced, message);
            } else {
                seen.insert(id.clone(), spec.id.referenced);
            }
            for inner in nested(spec) {
                self.check_ids(inner, seen);
            }
        }
    }

    /// Compiles one list of steps. Returns them, with the ids the steps after the list
    /// may read (every step of an `if`, `switch` or `parallel` that may have run, none
    /// inside a `for_each`).
    fn steps(&mut self, specs: &[StepSpec], block: &Block<'_>) -> (Vec<Step>, Vec<String>) {
        let mut steps = Vec::new();
        let mut earlier: Vec<String> = block.outer.to_vec();
        let mut exported = Vec::new();
        for spec in specs {
            let id = spec.id.value.as_str();
            let retry = spec.retry.as_ref().and_then(|retry| self.retry(retry));
            let refs = StepRefs {
                step: id,
                earlier: &earlier,
                all: block.all,
                in_loop: block.in_loop,
            };
            let when = spec
                .when
                .as_ref()
                .and_then(|when| self.expr(when, "when", &refs));
            let (kind, inner) = match self.step_kind(spec, &refs, block) {
                Some((kind, inner)) => (Some(kind), inner),
                None => (None, Vec::new()),
            };
            if let (Some(kind), Some(retry)) = (&kind, &spec.retry)
                && matches!(
                    kind,
                    StepKind::If(_)
                        | StepKind::Switch(_)
                        | StepKind::ForEach(_)
                        | StepKind::Parallel(_)
                )
            {
                self.report(
                    &retry.referenced,
                    format!(
                        "`retry` goes on the steps inside a `{}`, not on the block",
                        kind.name()
                    ),
                );
            }
            if let Some(kind) = kind {
                steps.push(Step {
                    id: id.to_owned(),
                    kind,
                    retry,
                    when,
                });
            }
            earlier.push(id.to_owned());
            earlier.extend(inner.iter().cloned());
            exported.push(id.to_owned());
            exported.extend(inner);
        }
        (steps, exported)
    }

    /// Compiles a step's kind; with it, the ids of its inner steps later steps may read.
    fn step_kind(
        &mut self,
        spec: &StepSpec,
        refs: &StepRefs<'_>,
        block: &Block<'_>,
    ) -> Option<(StepKind, Vec<String>)> {
        let set: Vec<&str> = [
            spec.transform.is_some(),
            spec.http.is_some(),
            spec.log.is_some(),
            spec.if_.is_some(),
            spec.switch.is_some(),
            spec.for_each.is_some(),
            spec.parallel.is_some(),
            spec.publish.is_some(),
            spec.sleep.is_some(),
            spec.state.is_some(),
            spec.fail.is_some(),
            spec.call.is_some(),
            spec.respond.is_some(),
            spec.files.is_some(),
        ]
        .into_iter()
        .zip(STEP_KINDS)
        .filter_map(|(present, kind)| present.then_some(kind))
        .collect();
        let id = &spec.id.value;
        match set.as_slice() {
            [] => {
                let message = format!(
                    "the step `{id}` names no kind: add one of {}",
                    STEP_KINDS.join(", ")
                );
                self.report(&spec.id.referenced, message);
                return None;
            }
            [_] => {}
            several => {
                let message = format!(
                    "the step `{id}` has several kinds ({}); a step does one thing",
                    several.join(", ")
                );
                self.report(&spec.id.referenced, message);
                return None;
            }
        }
        let leaf = |kind| Some((kind, Vec::new()));
        if let Some(program) = &spec.transform {
            return leaf(StepKind::Transform(self.expr(
                program,
                "transform",
                refs,
            )?));
        }
        if let Some(message) = &spec.log {
            return leaf(StepKind::Log(self.template(message, "log", refs)?));
        }
        if let Some(http) = &spec.http {
            let http = self.http(&http.value, &http.referenced, refs)?;
            return leaf(StepKind::Http(Box::new(http)));
        }
        if let Some(publish) = &spec.publish {
            return leaf(StepKind::Publish(Box::new(
                self.publish(&publish.value, refs)?,
            )));
        }
        if let Some(sleep) = &spec.sleep {
            let sleep = match &sleep.value {
                SleepSpec::For(duration) => {
                    let duration = Duration::from(*duration);
                    if duration.is_zero() {
                        self.report(&sleep.referenced, "a `sleep` must be longer than zero");
                    }
                    Sleep::For(duration)
                }
                SleepSpec::Until(until) => Sleep::Until(self.expr(&until.until, "until", refs)?),
            };
            return leaf(StepKind::Sleep(sleep));
        }
        if let Some(state) = &spec.state {
            let state = self.state(&state.value, &state.referenced, refs)?;
            return leaf(StepKind::State(Box::new(state)));
        }
        if let Some(files) = &spec.files {
            let files = self.files(&files.value, &files.referenced, refs)?;
            return leaf(StepKind::Files(Box::new(files)));
        }
        if let Some(fail) = &spec.fail {
            return leaf(StepKind::Fail(Box::new(self.fail(&fail.value, refs)?)));
        }
        if let Some(call) = &spec.call {
            return leaf(StepKind::Call(Box::new(self.call(&call.value, refs)?)));
        }
        if let Some(respond) = &spec.respond {
            return leaf(StepKind::Respond(Box::new(
                self.respond(&respond.value, refs)?,
            )));
        }
        // Blocks: their steps may read the steps before the block and, for `if` and
        // `switch`, the block's own decision.
        let mut outer = refs.earlier.to_vec();
        if let Some(spec) = &spec.if_ {
            outer.push(id.clone());
            let inner = Block {
                outer: &outer,
                ..*block
            };
            return self.if_step(&spec.value, refs, &inner);
        }
        if let Some(spec) = &spec.switch {
            outer.push(id.clone());
            let inner = Block {
                outer: &outer,
                ..*block
            };
            return self.switch_step(&spec.value, &spec.referenced, refs, &inner);
        }
        if let Some(spec) = &spec.for_each {
            let inner = Block {
                outer: &outer,
                in_loop: true,
                all: block.all,
            };
            return self.for_each(&spec.value, &spec.referenced, refs, &inner);
        }
        let spec = spec.parallel.as_ref()?;
        let inner = Block {
            outer: &outer,
            ..*block
        };
        if spec.value.branches.value.is_empty() {
            self.report(
                &spec.value.branches.referenced,
                "a `parallel` step needs at least one branch",
            );
        }
        let mut branches = Vec::new();
        let mut exported = Vec::new();
        for (name, specs) in &spec.value.branches.value {
            let (steps, ids) = self.steps(specs, &inner);
            branches.push((name.clone(), steps));
            exported.extend(ids);
        }
        Some((StepKind::Parallel(branches), exported))
    }

    fn if_step(
        &mut self,
        spec: &IfSpec,
        refs: &StepRefs<'_>,
        inner: &Block<'_>,
    ) -> Option<(StepKind, Vec<String>)> {
        let condition = self.expr(&spec.condition, "condition", refs);
        if spec.then.value.is_empty() {
            self.report(&spec.then.referenced, "`then` needs at least one step");
        }
        let (then, mut exported) = self.steps(&spec.then.value, inner);
        let (otherwise, more) = self.steps(&spec.else_, inner);
        exported.extend(more);
        let step = IfStep {
            condition: condition?,
            then,
            otherwise,
        };
        Some((StepKind::If(Box::new(step)), exported))
    }

    fn switch_step(
        &mut self,
        spec: &SwitchSpec,
        at: &Location,
        refs: &StepRefs<'_>,
        inner: &Block<'_>,
    ) -> Option<(StepKind, Vec<String>)> {
        let value = self.expr(&spec.value, "value", refs);
        if spec.cases.is_empty() {
            self.report(at, "a `switch` needs at least one case");
        }
        let mut exported = Vec::new();
        let mut cases = Vec::new();
        for (name, specs) in &spec.cases {
            let (steps, ids) = self.steps(specs, inner);
            cases.push((name.clone(), steps));
            exported.extend(ids);
        }
        let (default, ids) = self.steps(&spec.default, inner);
        exported.extend(ids);
        let step = SwitchStep {
            value: value?,
            cases,
            default,
        };
        Some((StepKind::Switch(Box::new(step)), exported))
    }

    fn for_each(
        &mut self,
        spec: &ForEachSpec,
        at: &Location,
        refs: &StepRefs<'_>,
        inner: &Block<'_>,
    ) -> Option<(StepKind, Vec<String>)> {
        let source = match (&spec.items, &spec.file) {
            (Some(items), None) => self.expr(items, "items", refs).map(ForEachSource::Items),
            (None, Some(file)) => self.file_rows(&file.value, refs).map(ForEachSource::File),
            _ => {
                self.report(
                    at,
                    "a `for_each` goes through `items` (a jq list) or `file` (a file's rows), one of them",
                );
                None
            }
        };
        let concurrency = match &spec.concurrency {
            Some(concurrency) if !(1..=MAX_CONCURRENCY).contains(&concurrency.value) => {
                self.report(
                    &concurrency.referenced,
                    format!("`concurrency` must be from 1 to {MAX_CONCURRENCY}"),
                );
                1
            }
            Some(concurrency) => concurrency.value,
            None => 1,
        };
        if spec.steps.value.is_empty() {
            self.report(
                &spec.steps.referenced,
                "a `for_each` needs at least one step",
            );
        }
        let (steps, _) = self.steps(&spec.steps.value, inner);
        let step = ForEachStep {
            source: source?,
            concurrency,
            steps,
        };
        Some((StepKind::ForEach(Box::new(step)), Vec::new()))
    }

    fn file_rows(&mut self, spec: &ForEachFileSpec, refs: &StepRefs<'_>) -> Option<FileRows> {
        let format = self.named(spec.format.as_ref(), "format", &Format::NAMES);
        if let (Some(format @ (Format::Json | Format::Xml | Format::Text)), Some(written)) =
            (format, &spec.format)
        {
            self.report(
                &written.referenced,
                format!("rows are read from csv or ndjson, not {}", format.as_str()),
            );
        }
        let batch = match &spec.batch {
            Some(batch) if !(1..=MAX_BATCH).contains(&batch.value) => {
                self.report(
                    &batch.referenced,
                    format!("`batch` must be from 1 to {MAX_BATCH}"),
                );
                DEFAULT_BATCH
            }
            Some(batch) => batch.value,
            None => DEFAULT_BATCH,
        };
        Some(FileRows {
            path: self.template(&spec.path, "path", refs)?,
            format,
            batch,
            csv: self.csv_options(spec.csv.as_ref()),
        })
    }

    fn publish(&mut self, spec: &PublishSpec, refs: &StepRefs<'_>) -> Option<PublishStep> {
        let topic = self.template(&spec.topic, "topic", refs);
        if !spec.topic.value.contains("${{") && !topic::is_valid(&spec.topic.value, false) {
            self.report(
                &spec.topic.referenced,
                format!("`{}` is not a topic: {}", spec.topic.value, topic::RULE),
            );
        }
        // `key` and `id` are evaluated over each event's data: their `.` is the event.
        let data = spec.data.as_ref().map(|data| self.expr(data, "data", refs));
        let key = spec.key.as_ref().map(|key| self.expr(key, "key", refs));
        let id = spec.id.as_ref().map(|id| self.expr(id, "id", refs));
        let state = match &spec.state {
            Some(state) => {
                let compiled = self.state(&state.value, &state.referenced, refs)?;
                if matches!(compiled.action, StateAction::Get(_)) {
                    self.report(
                        &state.referenced,
                        "a publish's `state` is a `set` or a `delete`; read state with a `state` step",
                    );
                    return None;
                }
                Some(compiled)
            }
            None => None,
        };
        Some(PublishStep {
            topic: topic?,
            data: data.map_or(Some(None), |data| data.map(Some))?,
            key: key.map_or(Some(None), |key| key.map(Some))?,
            id: id.map_or(Some(None), |id| id.map(Some))?,
            state,
        })
    }

    fn state(&mut self, spec: &StateSpec, at: &Location, refs: &StepRefs<'_>) -> Option<StateStep> {
        let scope = match spec.scope.as_ref().map(|scope| scope.value.as_str()) {
            None | Some("flow") => StateScope::Flow,
            Some("integration") => StateScope::Integration,
            Some(other) => {
                let at = spec.scope.as_ref().map_or(*at, |scope| scope.referenced);
                self.report(
                    &at,
                    format!("`scope` is `{other}`; it must be `flow` or `integration`"),
                );
                StateScope::Flow
            }
        };
        let (key, action) = match (&spec.get, &spec.set, &spec.delete) {
            (Some(key), None, None) => {
                if let Some(value) = &spec.value {
                    self.report(
                        &value.referenced,
                        "`value` goes with `set`; `get` takes a `default`",
                    );
                }
                let default = match &spec.default {
                    Some(default) => Some(self.expr(default, "default", refs)?),
                    None => None,
                };
                (key, StateAction::Get(default))
            }
            (None, Some(key), None) => {
                if let Some(default) = &spec.default {
                    self.report(&default.referenced, "`default` goes with `get`");
                }
                let Some(value) = &spec.value else {
                    self.report(
                        at,
                        "`set` needs a `value`: a jq program giving what to store",
                    );
                    return None;
                };
                (key, StateAction::Set(self.expr(value, "value", refs)?))
            }
            (None, None, Some(key)) => {
                if spec.value.is_some() || spec.default.is_some() {
                    self.report(at, "`delete` takes no `value` or `default`");
                }
                (key, StateAction::Delete)
            }
            _ => {
                self.report(
                    at,
                    "a `state` step does one of `get`, `set` and `delete`, each naming a key",
                );
                return None;
            }
        };
        Some(StateStep {
            action,
            key: self.template(key, "key", refs)?,
            scope,
        })
    }

    fn files(&mut self, spec: &FilesSpec, at: &Location, refs: &StepRefs<'_>) -> Option<FilesStep> {
        let misplaced =
            |this: &mut Self, field: &Option<Spanned<String>>, name: &str, with: &str| {
                if let Some(field) = field {
                    this.report(&field.referenced, format!("`{name}` goes with `{with}`"));
                }
            };
        let action = match (
            &spec.read,
            &spec.write,
            &spec.list,
            &spec.move_,
            &spec.delete,
        ) {
            (Some(path), None, None, None, None) => {
                FilesAction::Read(self.template(path, "read", refs)?)
            }
            (None, Some(path), None, None, None) => {
                let Some(data) = &spec.data else {
                    self.report(
                        at,
                        "`write` needs `data`: a jq program giving what to write",
                    );
                    return None;
                };
                FilesAction::Write {
                    path: self.template(path, "write", refs)?,
                    data: self.expr(data, "data", refs)?,
                    append: spec.append.unwrap_or(false),
                }
            }
            (None, None, Some(dir), None, None) => FilesAction::List {
                dir: self.template(dir, "list", refs)?,
                pattern: spec.pattern.as_ref().map(|pattern| pattern.value.clone()),
            },
            (None, None, None, Some(from), None) => {
                let Some(to) = &spec.to else {
                    self.report(at, "`move` needs `to`: where the file goes");
                    return None;
                };
                FilesAction::Move {
                    from: self.template(from, "move", refs)?,
                    to: self.template(to, "to", refs)?,
                }
            }
            (None, None, None, None, Some(path)) => {
                FilesAction::Delete(self.template(path, "delete", refs)?)
            }
            _ => {
                self.report(
                    at,
                    "a `files` step does one of `read`, `write`, `list`, `move` and `delete`, each naming a path",
                );
                return None;
            }
        };
        if !matches!(action, FilesAction::Write { .. }) {
            misplaced(self, &spec.data, "data", "write");
            if spec.append.is_some() {
                self.report(at, "`append` goes with `write`");
            }
        }
        if !matches!(action, FilesAction::List { .. }) {
            misplaced(self, &spec.pattern, "pattern", "list");
        }
        if !matches!(action, FilesAction::Move { .. }) {
            misplaced(self, &spec.to, "to", "move");
        }
        let format = self.named(spec.format.as_ref(), "format", &Format::NAMES);
        if let (FilesAction::Write { append: true, .. }, Some(Format::Json | Format::Xml)) =
            (&action, format)
        {
            self.report(
                at,
                "`append` adds rows or lines: use it with csv, ndjson or text",
            );
        }
        Some(FilesStep {
            action,
            format,
            csv: self.csv_options(spec.csv.as_ref()),
        })
    }

    /// CSV settings, each checked.
    pub(super) fn csv_options(&mut self, spec: Option<&CsvSpec>) -> CsvOptions {
        let mut options = CsvOptions::default();
        let Some(spec) = spec else {
            return options;
        };
        let one_byte =
            |this: &mut Self, field: &Option<Spanned<String>>, name: &str, into: &mut u8| {
                if let Some(field) = field {
                    let text = if field.value == "\\t" {
                        "\t"
                    } else {
                        field.value.as_str()
                    };
                    match text.as_bytes() {
                        [byte] if byte.is_ascii() => *into = *byte,
                        _ => this.report(
                            &field.referenced,
                            format!(
                                "`{name}` is one ASCII character (`\\t` for a tab), not `{}`",
                                field.value
                            ),
                        ),
                    }
                }
            };
        one_byte(self, &spec.delimiter, "delimiter", &mut options.delimiter);
        one_byte(self, &spec.quote, "quote", &mut options.quote);
        options.header = spec.header.unwrap_or(true);
        options.columns.clone_from(&spec.columns);
        options
    }

    fn fail(&mut self, spec: &FailSpec, refs: &StepRefs<'_>) -> Option<FailStep> {
        let message = self.expr(&spec.message, "message", refs);
        let code = match &spec.code {
            Some(code) => Some(self.expr(code, "code", refs)?),
            None => None,
        };
        Some(FailStep {
            message: message?,
            code,
        })
    }

    fn call(&mut self, spec: &CallSpec, refs: &StepRefs<'_>) -> Option<CallStep> {
        let target = &spec.flow;
        let (integration, flow) = match target.value.split_once('/') {
            Some((integration, flow)) => (integration.to_owned(), flow.to_owned()),
            None => (self.integration.clone(), target.value.clone()),
        };
        if !is_name(&integration) || !is_name(&flow) {
            self.report(
                &target.referenced,
                format!(
                    "`{}` does not name a flow: write `flow-name`, or `integration/flow-name` for another integration's",
                    target.value
                ),
            );
            return None;
        }
        self.calls.push(CallRef {
            at: target.referenced,
            integration: integration.clone(),
            flow: flow.clone(),
        });
        let input = match &spec.input {
            Some(input) => Some(self.expr(input, "input", refs)?),
            None => None,
        };
        Some(CallStep {
            target: CallTarget::Flow { integration, flow },
            input,
            wait: spec.wait.unwrap_or(true),
        })
    }

    fn respond(&mut self, spec: &RespondSpec, refs: &StepRefs<'_>) -> Option<RespondStep> {
        let problems_before = self.problems.len();
        let status = match &spec.status {
            None => ResponseStatus::Code(200),
            Some(status) => match &status.value {
                StatusSpec::Code(code) => {
                    if !(200..=599).contains(code) {
                        self.report(
                            &status.referenced,
                            format!("`status` is {code}; an answer's status is 200 to 599"),
                        );
                    }
                    ResponseStatus::Code(*code)
                }
                StatusSpec::Program(program) => {
                    let program = Spanned {
                        value: program.clone(),
                        referenced: status.referenced,
                        defined: status.defined,
                    };
                    ResponseStatus::Program(self.expr(&program, "status", refs)?)
                }
            },
        };
        let headers = self.templates(&spec.headers, "header", refs);
        let body = match &spec.body {
            Some(body) => Some(self.expr(body, "body", refs)?),
            None => None,
        };
        (self.problems.len() == problems_before).then_some(RespondStep {
            status,
            headers,
            body,
        })
    }

    pub(super) fn http(
        &mut self,
        spec: &HttpSpec,
        at: &Location,
        refs: &StepRefs<'_>,
    ) -> Option<HttpStep> {
        let problems_before = self.problems.len();
        let method = match &spec.method {
            None => String::from("GET"),
            Some(method) => {
                let upper = method.value.to_ascii_uppercase();
                if !HTTP_METHODS.contains(&upper.as_str()) {
                    let message = format!(
                        "`{}` is not an HTTP method (one of {})",
                        method.value,
                        HTTP_METHODS.join(", ")
                    );
                    self.report(&method.referenced, message);
                }
                upper
            }
        };
        let url = self.template(&spec.url, "url", refs);
        let headers = self.templates(&spec.headers, "header", refs);
        let query = self.templates(&spec.query, "query parameter", refs);
        let body = match (&spec.json, &spec.body) {
            (Some(_), Some(body)) => {
                self.report(
                    &body.referenced,
                    "an http step sends `json` or `body`, not both",
                );
                HttpBody::None
            }
            (Some(json), None) => self
                .expr(json, "json", refs)
                .map_or(HttpBody::None, HttpBody::Json),
            (None, Some(body)) => self
                .template(body, "body", refs)
                .map_or(HttpBody::None, HttpBody::Text),
            (None, None) => HttpBody::None,
        };
        for status in &spec.accept {
            if !(100..=599).contains(status) {
                self.report(
                    at,
                    format!("`accept` lists {status}, which is not an HTTP status"),
                );
            }
        }
        let idempotency_header = match (spec.idempotency, &spec.idempotency_header) {
            (Some(false), Some(header)) => {
                self.report(
                    &header.referenced,
                    "`idempotency_header` names the header of a key that `idempotency: false` turns off",
                );
                None
            }
            (Some(false), None) => None,
            (_, Some(header)) => {
                let valid = !header.value.is_empty()
                    && header.value.bytes().all(|byte| {
                        byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
                    });
                if !valid {
                    self.report(
                        &header.referenced,
                        format!("`{}` is not a header name", header.value),
                    );
                }
                Some(header.value.clone())
            }
            (_, None) => Some(String::from(DEFAULT_IDEMPOTENCY_HEADER)),
        };
        let paginate = spec.paginate.as_ref().and_then(|paginate| {
            let max_pages = match &paginate.max_pages {
                Some(max) if max.value == 0 || max.value > MAX_PAGES => {
                    self.report(
                        &max.referenced,
                        format!("`max_pages` must be from 1 to {MAX_PAGES}"),
                    );
                    DEFAULT_MAX_PAGES
                }
                Some(max) => max.value,
                None => DEFAULT_MAX_PAGES,
            };
            Some(Paginate {
                next: self.expr(&paginate.next, "next", refs)?,
                max_pages,
            })
        });
        let url = url?;
        (self.problems.len() == problems_before).then(|| HttpStep {
            method,
            url,
            headers,
            query,
            body,
            timeout: spec.timeout.map_or(DEFAULT_HTTP_TIMEOUT, Duration::from),
            accept: spec.accept.clone(),
            idempotency_header,
            paginate,
        })
    }

    fn templates(
        &mut self,
        specs: &BTreeMap<String, Spanned<String>>,
        what: &str,
        refs: &StepRefs<'_>,
    ) -> Vec<(String, Template)> {
        specs
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    name.clone(),
                    self.template(value, &format!("{what} `{name}`"), refs)?,
                ))
            })
            .collect()
    }
}

/// The step lists a step holds.
fn nested(spec: &StepSpec) -> Vec<&[StepSpec]> {
    let mut lists: Vec<&[StepSpec]> = Vec::new();
    if let Some(spec) = &spec.if_ {
        lists.push(&spec.value.then.value);
        lists.push(&spec.value.else_);
    }
    if let Some(spec) = &spec.switch {
        lists.extend(spec.value.cases.values().map(Vec::as_slice));
        lists.push(&spec.value.default);
    }
    if let Some(spec) = &spec.for_each {
        lists.push(&spec.value.steps.value);
    }
    if let Some(spec) = &spec.parallel {
        lists.extend(spec.value.branches.value.values().map(Vec::as_slice));
    }
    lists
}

/// Every step id in `specs` and below, with whether it is inside a `for_each`.
fn collect_ids(specs: &[StepSpec], in_loop: bool, ids: &mut Vec<(String, bool)>) {
    for spec in specs {
        ids.push((spec.id.value.clone(), in_loop));
        let inner_loop = in_loop || spec.for_each.is_some();
        for inner in nested(spec) {
            collect_ids(inner, inner_loop, ids);
        }
    }
}
