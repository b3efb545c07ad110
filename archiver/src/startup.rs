//! The archiver application: its two stores and its settings, built once per
//! process (zero-to-production keeps its `Application` the same way). The run,
//! the operator commands and the plan all take an [`Archiver`].

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tiering::archive::{Archive, BlobArchive};
use tiering::cosmos::CosmosStore;
use tiering::record::{AgeField, AgeValue};
use tiering::settings::ArchiverSettings;
use tiering::store::Transport;

/// Everything a pass or an operator command needs, built once per process.
#[derive(Debug, Clone)]
pub struct Archiver {
    pub cosmos: CosmosStore,
    pub archive: Arc<dyn Archive>,
    pub settings: ArchiverSettings,
}

impl Archiver {
    /// The age value before which records are archived.
    pub fn cutoff(field: &AgeField, now: DateTime<Utc>, after_days: u32) -> AgeValue {
        field.at(now - chrono::Duration::days(i64::from(after_days)))
    }

    /// Both bounds a record must be older than at `now`: its age value
    /// (`ARCHIVE_AFTER_DAYS`) and its last write (`ARCHIVE_QUIET_DAYS`).
    pub fn cutoffs(&self, now: DateTime<Utc>) -> crate::decide::Cutoff {
        let s = &self.settings;
        crate::decide::Cutoff {
            age: Self::cutoff(&s.stores.age_field, now, s.after_days),
            // 0 turns the quiet period off: a record written this very second qualifies too.
            written_before: match s.quiet_days {
                0 => i64::MAX,
                days => (now - chrono::Duration::days(i64::from(days))).timestamp(),
            },
        }
    }
}

/// Connects to both stores and, unless this process only reads (`writes` false:
/// a dry run, a report), makes sure the archive container exists.
pub async fn build(settings: ArchiverSettings, transport: Transport, writes: bool) -> anyhow::Result<Archiver> {
    let cosmos = CosmosStore::connect(&settings.stores, transport).await.context("connecting to Cosmos DB")?;
    let archive = BlobArchive::new(&settings.stores, transport).context("building the Blob client")?;
    if writes {
        archive.ensure_container().await.context("creating the archive container")?;
    }
    Ok(Archiver { cosmos, archive: Arc::new(archive), settings })
}
