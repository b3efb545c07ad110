//! The archiver: a timer-triggered Azure Functions custom handler that moves
//! billing records older than `ARCHIVE_AFTER_DAYS` from Cosmos DB to Blob Storage.
//!
//! - [`startup`]: the [`startup::Archiver`] application: its stores and settings.
//! - [`run`]: one archive pass (query, copy, verify, delete) and its summary.
//! - [`decide`]: the protocol's decisions, apart from I/O (pure).
//! - [`lease`]: the run lease that keeps two passes from overlapping.
//! - [`restamp`]: bringing archived copies' age stamps up to the current age field.
//! - [`index`]: backfilling the list index (`tiering::index`) for older copies.
//! - [`retention`]: expiring copies past `ARCHIVE_RETENTION_DAYS`.
//! - [`holds`]: holds, which keep a partition's copies from expiry and erasure.
//! - [`budget`]: the request-unit budget that paces new work.
//! - [`concurrency`]: the adaptive limit on records in flight.
//! - [`handler`]: the HTTP surface the Functions host calls.
//! - [`ops`]: operator commands: verify, find shadowed copies, forget, restore
//!   and bulk restore.
//! - [`plan`]: what archiving will do, before it is on (counts, bytes, RU, time, cost).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod budget;
pub mod concurrency;
pub mod decide;
pub mod handler;
pub mod holds;
pub mod index;
pub mod lease;
pub mod ops;
pub mod plan;
pub mod restamp;
pub mod retention;
pub mod run;
pub mod startup;
