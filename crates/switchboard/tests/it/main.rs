//! End-to-end tests: the real server on a loopback port with a temporary data folder,
//! spoken to over HTTP; outbound calls go to a real local receiver.

// A failed unwrap in the harness is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerts;
mod api;
mod bus;
mod cli;
mod cluster;
mod control;
mod crash;
mod deploy;
mod examples;
mod files;
mod flows;
mod hooks;
mod invoke;
mod openapi;
#[cfg(feature = "otel")]
mod otel;
mod outbound;
mod retries;
mod schedules;
mod support;
mod telemetry;
mod verify;
