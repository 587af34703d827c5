//! jq, the one expression language of Switchboard.
//!
//! A field that computes a value is an [`Expr`]: a jq program compiled once, when the
//! project loads, with the `jaq` crates. A string field may embed `${{ jq }}`
//! interpolations; that is a [`Template`]. Both run against a [`Scope`]: `.` is the
//! trigger's data and `$trigger`, `$steps`, `$config`, `$secrets` and `$execution` name
//! the rest.
//!
//! User programs are not trusted to end. Every run is guarded ([`Limits`]): a deadline,
//! a recursion guard that stops before the thread's stack runs out, and a cap on the
//! number of outputs, so `def f: f; f` or `[range(1e12)]` fails its step with a clear
//! error instead of hanging or crashing a worker. The guard lives in [`guard`].

mod guard;
mod program;
mod scope;
mod template;

pub use program::{CompileError, EvalError, Expr, Limits};
pub use scope::{Scope, VARIABLES};
pub use template::Template;
