//! The tiering core shared by the `archiver` and `reader` function apps.
//!
//! Billing records live in a Cosmos DB container; records older than a cutoff are
//! copied to Blob Storage as zstd-compressed JSON, verified, and only then deleted
//! from Cosmos. Readers look in Cosmos first and fall back to the archive.
//!
//! Data flows: Cosmos document bytes -> [`record::RawDocument`] (system properties
//! stripped, bytes kept) -> [`codec`] (zstd + SHA-256 + metadata) -> blob named by
//! [`layout`]. Reading back reverses it and proves the copy intact first.
//!
//! Modules:
//! - [`record`]: a record as raw JSON; ids, age field, system properties. Pure.
//! - [`layout`]: `(customerId, id)` <-> blob name. Pure, reversible.
//! - [`codec`]: compression, integrity hash, blob metadata. Pure.
//! - [`settings`]: the only place that reads environment variables.
//! - [`host`]: the Functions custom-handler payload types.
//! - [`telemetry`]: tracing set-up for both binaries.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;
pub mod host;
pub mod layout;
pub mod record;
pub mod settings;
pub mod telemetry;
