//! Test, demo and benchmark support for the billing-record tiering; none of it is
//! ever built into the function apps (only tests, `devhost` and the benchmark
//! depend on this crate).
//!
//! `scripts/test.sh` starts the emulators and exports their endpoints; every test
//! then works in its own database, container and archive container, so tests run
//! in parallel against one pair of emulators without seeing each other's data.
//!
//! - [`emulator`]: settings for the shared emulators, unique names, private
//!   emulator processes (to stop, or to answer with injected faults).
//! - [`cosmos`]: databases and containers as a production team has them, raw writes.
//! - [`proxy`]: a TCP proxy that adds latency, stalls, or loses an answer.
//! - [`raw`]: an HTTP request sent exactly as written (dot segments and all).
//! - [`hooks`]: an archive wrapper that lets another actor act at a precise step.
//! - [`memory`]: an in-memory archive with Blob Storage's conditional semantics.
//! - [`sample`]: realistic, deterministic sample invoices.
//! - [`idp`]: a local token issuer (OpenID configuration, JWKS, RS256 tokens good and bad).
//! - [`logs`]: log lines in the production JSON format, captured for assertions.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cosmos;
pub mod emulator;
pub mod hooks;
pub mod idp;
pub mod logs;
pub mod memory;
pub mod proxy;
pub mod raw;
pub mod sample;
