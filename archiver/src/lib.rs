//! The archiver: a timer-triggered Azure Functions custom handler that moves
//! billing records older than `ARCHIVE_AFTER_DAYS` from Cosmos DB to Blob Storage.
//!
//! - [`run`]: one archive pass (query, copy, verify, delete) and its summary.
//! - [`budget`]: the request-unit budget that paces Cosmos spending.
//! - [`handler`]: the HTTP surface the Functions host calls.
//! - [`ops`]: operator commands: verify the archive, restore a record.
//! - [`startup`]: building the stores from settings and serving.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod budget;
pub mod handler;
pub mod ops;
pub mod run;
pub mod startup;
