//! The run-time guard of a jq evaluation.
//!
//! jaq has no fuel or interrupt API, but every step of its interpreter asks the run's
//! data for the look-up table of the program. [`GuardedData`] answers that question and,
//! on the way, checks the deadline and how much stack is left. When either runs out it
//! unwinds the evaluation with an [`Interrupt`] panic, which [`run_guarded`] catches and
//! turns into an error. The interpreter holds no locks or shared state, so unwinding out
//! of it leaves nothing behind.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::time::Instant;

use jaq_core::Lut;
use jaq_core::data::{DataT, HasLut};
use jaq_json::Val;

/// Below this much remaining stack an evaluation is stopped as too deeply recursive.
const STACK_RED_ZONE: usize = 256 * 1024;
/// An evaluation that starts with less stack than this runs on a fresh segment.
const STACK_NEEDED_AT_START: usize = 2 * 1024 * 1024;
/// The size of such a fresh segment.
const STACK_SEGMENT: usize = 16 * 1024 * 1024;
/// How many interpreter steps pass between two clock reads.
const TICKS_PER_CLOCK_READ: u32 = 1024;

/// Why an evaluation was stopped from the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// The deadline passed.
    Deadline,
    /// The recursion went so deep that the stack would soon run out.
    TooDeep,
}

/// The data type that marks guarded evaluations: values are jaq-json's.
pub(crate) struct Guarded;

impl DataT for Guarded {
    type V<'a> = Val;
    type Data<'a> = GuardedData<'a>;
}

/// What a guarded evaluation carries: the program and its guard.
#[derive(Clone)]
pub(crate) struct GuardedData<'a> {
    lut: &'a Lut<Guarded>,
    guard: &'a Guard,
}

impl<'a> GuardedData<'a> {
    /// The data for one evaluation of the program `lut` under `guard`.
    pub(crate) fn new(lut: &'a Lut<Guarded>, guard: &'a Guard) -> Self {
        Self { lut, guard }
    }
}

impl GuardedData<'_> {
    /// Counts one step of work done outside the interpreter loop (by a native function).
    pub(crate) fn tick(&self) {
        self.guard.tick();
    }
}

impl<'a> HasLut<'a, Guarded> for GuardedData<'a> {
    fn lut(&self) -> &'a Lut<Guarded> {
        self.guard.tick();
        self.lut
    }
}

/// The limits of one evaluation, checked at every interpreter step.
pub(crate) struct Guard {
    deadline: Instant,
    ticks: Cell<u32>,
}

impl Guard {
    /// A guard that stops the evaluation at `deadline`.
    pub(crate) fn new(deadline: Instant) -> Self {
        Self {
            deadline,
            ticks: Cell::new(0),
        }
    }

    fn tick(&self) {
        if stacker::remaining_stack().is_some_and(|left| left < STACK_RED_ZONE) {
            std::panic::panic_any(Interrupt::TooDeep);
        }
        let ticks = self.ticks.get().wrapping_add(1);
        self.ticks.set(ticks);
        if ticks.is_multiple_of(TICKS_PER_CLOCK_READ) && Instant::now() >= self.deadline {
            std::panic::panic_any(Interrupt::Deadline);
        }
    }
}

/// Runs `evaluate` with enough stack, turning an [`Interrupt`] into an error.
///
/// Panics other than interrupts (a bug in the interpreter) are caught as well, so a bad
/// program fails its step and never the worker.
pub(crate) fn run_guarded<T>(evaluate: impl FnOnce() -> T) -> Result<T, Stopped> {
    silence_interrupt_panics();
    let outcome = stacker::maybe_grow(STACK_NEEDED_AT_START, STACK_SEGMENT, || {
        catch_unwind(AssertUnwindSafe(evaluate))
    });
    outcome.map_err(|payload| match payload.downcast_ref::<Interrupt>() {
        Some(interrupt) => Stopped::Interrupted(*interrupt),
        None => Stopped::Panicked(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| {
                    payload
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                })
                .unwrap_or_else(|| String::from("unknown panic")),
        ),
    })
}

/// How a guarded evaluation ended early.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// The guard stopped it.
    Interrupted(Interrupt),
    /// The interpreter panicked by itself.
    Panicked(String),
}

/// Keeps interrupt unwinds out of the panic log: they are expected, and reported as errors.
fn silence_interrupt_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Interrupt>() {
                previous(info);
            }
        }));
    });
}
