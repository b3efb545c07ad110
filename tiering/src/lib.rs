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
//! - [`contract`]: the read contract an adopter describes (`contract.toml`). Pure.
//! - [`layout`]: `(customerId, id)` <-> blob name. Pure, reversible.
//! - [`index`]: the list index: entry names in listing order. Pure, reversible.
//! - [`codec`]: compression, integrity hash, blob metadata. Pure.
//! - [`listing`]: the cross-tier listing order, window and page merge. Pure.
//! - [`settings`]: the only place that reads environment variables.
//! - [`schedule`]: the timer's NCRONTAB schedule, as the host reads it. Pure.
//! - [`host`]: the Functions custom-handler payload types.
//! - [`store`]: store errors by what a caller can do, and transport limits.
//! - [`cosmos`]: the Cosmos side: point reads, aged-record queries, conditional deletes.
//! - [`archive`]: the Blob side: conditional uploads, reads, listing.
//! - [`moveback`]: an archived record back into Cosmos (restore, write-through).
//! - [`identity`]: Managed Identity when no emulator key or SAS is set.
//! - [`telemetry`]: tracing set-up for both binaries.
//!
//! Test support (emulators, a fault-injecting proxy, an in-memory archive, sample
//! invoices) lives in the `testkit` crate, so no build of the apps carries it.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod archive;
pub mod codec;
pub mod contract;
pub mod cosmos;
pub mod host;
pub mod identity;
pub mod index;
pub mod layout;
pub mod listing;
pub mod moveback;
pub mod record;
pub mod schedule;
pub mod settings;
pub mod store;
pub mod telemetry;
