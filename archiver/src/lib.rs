//! The archiver: a timer-triggered Azure Functions custom handler that moves
//! billing records older than `ARCHIVE_AFTER_DAYS` from Cosmos DB to Blob Storage.
//!
//! - [`run`]: one archive pass (query, copy, verify, delete) and its summary.
//! - [`lease`]: the run lease that keeps two passes from overlapping.
//! - [`restamp`]: bringing archived copies' age stamps up to the current age field.
//! - [`budget`]: the request-unit budget that paces Cosmos spending.
//! - [`handler`]: the HTTP surface the Functions host calls.
//! - [`ops`]: operator commands: verify, find shadowed copies, forget, restore.
//! - [`startup`]: building the stores from settings and serving.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod budget;
pub mod handler;
pub mod lease;
pub mod ops;
pub mod restamp;
pub mod run;
pub mod startup;
