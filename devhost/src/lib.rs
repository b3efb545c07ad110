//! Tools around the two function apps, for tests, packaging and the demo; none of
//! this is deployed.
//!
//! - [`app`]: an app folder as `func` reads it, and [`app::assemble`] that builds one.
//! - [`host`]: a stand-in for the Azure Functions host (which cannot be installed
//!   here): starts a handler, probes it, fires timers, forwards HTTP.
//! - [`current_api`]: a stand-in for the team's current API, serving a contract
//!   profile straight from Cosmos, to compare the reader with.
//! - [`mapped_api`]: a stand-in for a billing API shaped like most real ones (its
//!   own DTOs, errors, lists and API key), for the reader in front mode.
//! - [`drive`]: the sample data set, seeding and timed reads shared by the demo and the benchmark.
//! - [`openapi`]: the OpenAPI document of a contract profile, derived from the default's.
//! - [`stats`]: percentiles and the storage-cost model the demo prints.
//! - [`report`]: the demo's report as a self-contained HTML page with charts.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod app;
pub mod current_api;
pub mod drive;
pub mod host;
pub mod mapped_api;
pub mod openapi;
pub mod report;
pub mod stats;

use std::path::PathBuf;

/// The repository root (this crate lives one level below it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}
