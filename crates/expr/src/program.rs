//! Compiling jq programs once and running them under [`Limits`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use jaq_core::load::{Arena, File, Loader, lex, parse};
use jaq_core::native::Fun;
use jaq_core::{Compiler, Ctx, Native, Vars, box_iter::box_once, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

use crate::guard::{Guard, Guarded, GuardedData, Interrupt, Stopped, run_guarded};
use crate::scope::{Scope, VARIABLES};

/// How long and how much one evaluation may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The evaluation is stopped when it runs longer than this.
    pub timeout: Duration,
    /// The evaluation is stopped when it produces more outputs than this.
    pub max_outputs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            max_outputs: 100_000,
        }
    }
}

/// A problem in a program's text, at a byte offset into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// What is wrong, for a person.
    pub message: String,
    /// Where in the program text, in bytes.
    pub offset: usize,
}

/// Why an evaluation produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// jq raised an error (`error("x")`, indexing a number, …).
    #[error("{0}")]
    Runtime(String),
    /// The deadline of [`Limits::timeout`] passed.
    #[error("the expression ran longer than {0:?} and was stopped")]
    Timeout(Duration),
    /// The recursion went too deep.
    #[error("the expression recursed too deeply and was stopped")]
    TooDeep,
    /// More than [`Limits::max_outputs`] outputs.
    #[error("the expression produced more than {0} values and was stopped")]
    TooManyOutputs(usize),
    /// A single value was needed and there was none.
    #[error("the expression produced no value")]
    NoOutput,
    /// A single value was needed and there were several.
    #[error("the expression produced more than one value; wrap it in [ ] to collect them")]
    SeveralOutputs,
    /// The value has no JSON form (such as NaN).
    #[error("the expression produced a value that is not JSON: {0}")]
    NotJson(String),
    /// The interpreter failed by itself.
    #[error("the expression interpreter failed: {0}")]
    Internal(String),
}

/// A compiled jq program.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    filter: Arc<jaq_core::Filter<Guarded>>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl Expr {
    /// Compiles a program; every problem found is returned with its offset.
    pub fn compile(source: &str) -> Result<Self, Vec<CompileError>> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(
                &arena,
                File {
                    code: source,
                    path: (),
                },
            )
            .map_err(|errors| load_errors(source, errors))?;
        let filter = Compiler::default()
            .with_funs(functions())
            .with_global_vars(VARIABLES)
            .compile(modules)
            .map_err(|errors| {
                errors
                    .into_iter()
                    .flat_map(|(_, undefined)| undefined)
                    .map(|(name, kind)| CompileError {
                        message: format!("undefined {} `{name}`", kind.as_str()),
                        offset: offset_in(source, name),
                    })
                    .collect::<Vec<_>>()
            })?;
        Ok(Self {
            source: source.into(),
            filter: Arc::new(filter),
        })
    }

    /// The program text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every output of the program, at most [`Limits::max_outputs`] of them.
    pub fn eval_all(&self, scope: &Scope, limits: &Limits) -> Result<Vec<Value>, EvalError> {
        let cap = limits.max_outputs.saturating_add(1);
        let outputs = self.run(scope, limits, cap)?;
        if outputs.len() > limits.max_outputs {
            return Err(EvalError::TooManyOutputs(limits.max_outputs));
        }
        outputs.iter().map(to_json).collect()
    }

    /// The program's single output.
    pub fn eval_one(&self, scope: &Scope, limits: &Limits) -> Result<Value, EvalError> {
        let mut outputs = self.run(scope, limits, 2)?;
        match (outputs.pop(), outputs.is_empty()) {
            (None, _) => Err(EvalError::NoOutput),
            (Some(value), true) => to_json(&value),
            (Some(_), false) => Err(EvalError::SeveralOutputs),
        }
    }

    /// Runs the program and collects up to `cap` outputs.
    fn run(&self, scope: &Scope, limits: &Limits, cap: usize) -> Result<Vec<Val>, EvalError> {
        let guard = Guard::new(Instant::now() + limits.timeout);
        let filter = &self.filter;
        let outcome = run_guarded(|| {
            let data = GuardedData::new(&filter.lut, &guard);
            let ctx = Ctx::<Guarded>::new(data, Vars::new(scope.variables()));
            let mut outputs = Vec::new();
            for output in filter
                .id
                .run((ctx, scope.input()))
                .map(unwrap_valr)
                .take(cap)
            {
                outputs.push(output.map_err(runtime_error)?);
            }
            Ok(outputs)
        });
        match outcome {
            Ok(result) => result,
            Err(Stopped::Interrupted(Interrupt::Deadline)) => {
                Err(EvalError::Timeout(limits.timeout))
            }
            Err(Stopped::Interrupted(Interrupt::TooDeep)) => Err(EvalError::TooDeep),
            Err(Stopped::Panicked(message)) => Err(EvalError::Internal(message)),
        }
    }

    /// The step ids this program reads as `$steps.<id>` (or `$steps["<id>"]`), with the
    /// byte offset of each reference.
    pub fn step_references(&self) -> Vec<(String, usize)> {
        step_references(&self.source)
    }

    /// The byte offset of the first place the program reads the variable `name`
    /// (`$item`), if it does.
    pub fn reads_variable(&self, name: &str) -> Option<usize> {
        let mut search_from = 0;
        while let Some(relative) = self.source[search_from..].find(name) {
            let at = search_from + relative;
            search_from = at + name.len();
            let ends = self.source[search_from..]
                .chars()
                .next()
                .is_none_or(|next| !(next.is_ascii_alphanumeric() || next == '_'));
            if ends {
                return Some(at);
            }
        }
        None
    }
}

/// A jq error as text: `error("too much")` reads `too much`, other values as JSON.
fn runtime_error(error: jaq_core::Error<Val>) -> EvalError {
    let text = error.into_val().to_string();
    EvalError::Runtime(serde_json::from_str::<String>(&text).unwrap_or(text))
}

/// A jaq value as JSON; `NaN` and the like have no JSON form.
pub(crate) fn to_json(value: &Val) -> Result<Value, EvalError> {
    let text = value.to_string();
    serde_json::from_str(&text).map_err(|_| EvalError::NotJson(text))
}

/// The native functions of jq, less those that reach outside the expression:
/// `env` (it would show the process environment, secrets included), `input`/`inputs`,
/// `halt`, and the printing ones.
fn functions() -> impl Iterator<Item = Fun<Guarded>> {
    jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .map(|(name, args, native)| {
            let replacement: Option<Native<Guarded>> = match name {
                "env" => Some(Native::new(|_| box_once(Ok(Val::from_map_empty())))),
                "input" | "inputs" | "debug_empty" | "stderr_empty" => {
                    Some(Native::new(|_| Box::new(std::iter::empty())))
                }
                "range" => Some(Native::new(|cv| guarded_range(cv))),
                "halt" => Some(Native::new(|_| {
                    box_once(Err(jaq_core::Exn::from(jaq_core::Error::str(
                        "halt is not available in Switchboard",
                    ))))
                })),
                _ => None,
            };
            (name, args, replacement.unwrap_or(native))
        })
}

/// `range($from; $to; $by)` as jaq defines it, counting each value against the guard: the
/// built-in one yields values without passing through the interpreter, so a
/// `[range(1e12)]` would otherwise never meet the deadline.
fn guarded_range(mut cv: jaq_core::Cv<'_, Guarded>) -> jaq_core::ValXs<'_, Val> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let by = cv.0.pop_var();
    let to = cv.0.pop_var();
    let mut next: Result<Val, jaq_core::Exn<Val>> = Ok(cv.0.pop_var());
    let data = cv.0.data().clone();
    let direction = by.partial_cmp(&Val::from(0usize)).unwrap_or(Equal);
    Box::new(std::iter::from_fn(move || {
        data.tick();
        match next.clone() {
            Ok(value) => {
                let more = match direction {
                    Greater => value < to,
                    Less => value > to,
                    Equal => value != to,
                };
                more.then(|| {
                    std::mem::replace(&mut next, (value + by.clone()).map_err(jaq_core::Exn::from))
                })
            }
            Err(error) => {
                next = Ok(to.clone());
                Some(Err(error))
            }
        }
    }))
}

/// Extension for an empty object, which jaq's API builds through a fallible call.
trait EmptyObject {
    fn from_map_empty() -> Self;
}

impl EmptyObject for Val {
    fn from_map_empty() -> Self {
        <Val as jaq_core::ValT>::from_map(std::iter::empty()).unwrap_or(Val::Null)
    }
}

/// The byte offset of `part` inside `whole`, when `part` is a slice of it.
fn offset_in(whole: &str, part: &str) -> usize {
    let start = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at >= start && at <= start + whole.len() {
        at - start
    } else {
        0
    }
}

fn load_errors(source: &str, errors: jaq_core::load::Errors<&str, ()>) -> Vec<CompileError> {
    let mut found = Vec::new();
    for (_, error) in errors {
        match error {
            jaq_core::load::Error::Io(problems) => {
                found.extend(problems.into_iter().map(|(path, message)| CompileError {
                    message: format!("{path}: {message}"),
                    offset: 0,
                }))
            }
            jaq_core::load::Error::Lex(problems) => {
                found.extend(problems.into_iter().map(|(expected, at)| CompileError {
                    message: lex_message(&expected, at),
                    offset: offset_in(source, at),
                }))
            }
            jaq_core::load::Error::Parse(problems) => {
                found.extend(problems.into_iter().map(|(expected, at)| CompileError {
                    message: parse_message(&expected, at),
                    offset: offset_in(source, at),
                }))
            }
        }
    }
    found
}

fn found_text(at: &str) -> String {
    match at.chars().next() {
        None => String::from("the end of the program"),
        Some(_) => format!("`{}`", at.chars().take(12).collect::<String>()),
    }
}

fn lex_message(expected: &lex::Expect<&str>, at: &str) -> String {
    let what = match expected {
        lex::Expect::Delim("(") => "a closing parenthesis",
        lex::Expect::Delim("[") => "a closing bracket",
        lex::Expect::Delim("{") => "a closing brace",
        lex::Expect::Delim("\"") => "a closing quote",
        lex::Expect::Delim(_) => "a closing delimiter",
        lex::Expect::Digit => "a digit",
        lex::Expect::Ident => "an identifier",
        lex::Expect::Escape => "a string escape sequence",
        lex::Expect::Unicode => "a 4-digit hexadecimal code point",
        lex::Expect::Token => "a token",
        _ => "something else",
    };
    format!("jq syntax error: expected {what}, found {}", found_text(at))
}

fn parse_message(expected: &parse::Expect<&str>, at: &str) -> String {
    format!(
        "jq syntax error: expected {}, found {}",
        expected.as_str(),
        found_text(at)
    )
}

/// Finds `$steps.<id>`, `$steps."<id>"` and `$steps["<id>"]` in a program text.
fn step_references(source: &str) -> Vec<(String, usize)> {
    const MARKER: &str = "$steps";
    let mut found = Vec::new();
    let mut search_from = 0;
    while let Some(relative) = source[search_from..].find(MARKER) {
        let at = search_from + relative;
        let rest = &source[at + MARKER.len()..];
        search_from = at + MARKER.len();
        let name = if let Some(after_dot) = rest.strip_prefix('.') {
            if let Some(quoted) = after_dot.strip_prefix('"') {
                quoted.split('"').next().map(str::to_owned)
            } else {
                let end = after_dot
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after_dot.len());
                (end > 0).then(|| after_dot[..end].to_owned())
            }
        } else if let Some(bracket) = rest.strip_prefix("[\"") {
            bracket.split('"').next().map(str::to_owned)
        } else {
            None
        };
        if let Some(name) = name {
            found.push((name, at));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope(input: Value) -> Scope {
        Scope::new(
            &input,
            &json!({"headers": {"x-id": "7"}}),
            &json!({"url": "http://x"}),
            &json!({}),
            &json!({"id": "exe_1"}),
        )
    }

    #[test]
    fn evaluates_against_input_and_variables() {
        let expr = Expr::compile("{id: .id, total: ([.lines[] | .qty * .price] | add), h: $trigger.headers[\"x-id\"], u: $config.url}")
            .unwrap();
        let input = json!({"id": 1, "lines": [{"qty": 2, "price": 5}, {"qty": 1, "price": 3}]});
        assert_eq!(
            expr.eval_one(&scope(input), &Limits::default()).unwrap(),
            json!({"id": 1, "total": 13, "h": "7", "u": "http://x"})
        );
    }

    #[test]
    fn step_outputs_are_visible_once_set() {
        let expr = Expr::compile("$steps.order.id").unwrap();
        let mut scope = scope(json!(null));
        scope.set_step("order", &json!({"id": 42}));
        assert_eq!(
            expr.eval_one(&scope, &Limits::default()).unwrap(),
            json!(42)
        );
        assert_eq!(expr.step_references(), vec![("order".to_owned(), 0)]);
    }

    #[test]
    fn syntax_errors_point_into_the_program() {
        let errors = Expr::compile("{id: .id,, x}").unwrap_err();
        assert!(
            errors[0].message.starts_with("jq syntax error"),
            "{errors:?}"
        );
        assert_eq!(errors[0].offset, 9);
        let errors = Expr::compile(".a | $stepz").unwrap_err();
        assert_eq!(errors[0].message, "undefined variable `$stepz`");
        assert_eq!(errors[0].offset, 5);
    }

    #[test]
    fn endless_programs_are_stopped() {
        let limits = Limits {
            timeout: Duration::from_millis(200),
            max_outputs: 1000,
        };
        let scope = scope(json!(null));
        for program in ["def f: f; f", "[range(1e12)]", "last(range(1e12))"] {
            let started = Instant::now();
            let error = Expr::compile(program)
                .unwrap()
                .eval_one(&scope, &limits)
                .unwrap_err();
            assert_eq!(error, EvalError::Timeout(limits.timeout), "{program}");
            assert!(started.elapsed() < Duration::from_secs(5), "{program}");
        }
        let error = Expr::compile("def f: 1 + f; f")
            .unwrap()
            .eval_one(&scope, &limits)
            .unwrap_err();
        assert!(
            matches!(error, EvalError::TooDeep | EvalError::Timeout(_)),
            "{error:?}"
        );
        let error = Expr::compile("range(1e12)")
            .unwrap()
            .eval_all(&scope, &limits)
            .unwrap_err();
        assert_eq!(error, EvalError::TooManyOutputs(1000));
    }

    #[test]
    fn environment_is_not_visible() {
        let expr = Expr::compile("env | length").unwrap();
        assert_eq!(
            expr.eval_one(&scope(json!(null)), &Limits::default())
                .unwrap(),
            json!(0)
        );
    }

    #[test]
    fn runtime_errors_and_output_counts_are_reported() {
        let scope = scope(json!({"a": 1}));
        let limits = Limits::default();
        assert!(matches!(
            Expr::compile(".a.b").unwrap().eval_one(&scope, &limits),
            Err(EvalError::Runtime(_))
        ));
        assert_eq!(
            Expr::compile("empty").unwrap().eval_one(&scope, &limits),
            Err(EvalError::NoOutput)
        );
        assert_eq!(
            Expr::compile("1, 2").unwrap().eval_one(&scope, &limits),
            Err(EvalError::SeveralOutputs)
        );
    }
}
