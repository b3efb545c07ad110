//! The archiver application: its two stores and its settings, built once per
//! process (zero-to-production keeps its `Application` the same way). The run,
//! the operator commands and the plan all take an [`Archiver`].

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tiering::archive::{Archive, BlobArchive};
use tiering::cosmos::{CosmosStore, ThroughputControl};
use tiering::record::{AgeField, AgeValue};
use tiering::settings::{ArchiverSettings, Priority, RuBudgetSetting};
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
pub async fn build(mut settings: ArchiverSettings, transport: Transport, writes: bool) -> anyhow::Result<Archiver> {
    let control =
        ThroughputControl { low_priority: settings.priority == Priority::Low, bucket: settings.throughput_bucket };
    let cosmos = CosmosStore::connect_controlled(&settings.stores, transport, control)
        .await
        .context("connecting to Cosmos DB")?;
    if let RuBudgetSetting::Auto { share_percent, deployed } = settings.ru_budget {
        let (budget, note) = crate::budget::from_throughput(&cosmos.throughput().await, share_percent, deployed);
        settings.max_ru_per_second = budget;
        settings.ru_budget_note = note;
    }
    tracing::info!(
        ru_budget = settings.max_ru_per_second,
        priority = ?settings.priority,
        throughput_bucket = ?settings.throughput_bucket,
        "request units: {}; requests go at {} priority{} (docs/deployment.md, \"Sharing the throughput\")",
        settings.ru_budget_note,
        if control.low_priority { "low" } else { "high" },
        match settings.throughput_bucket {
            Some(b) => format!(
                " in throughput bucket {b}, which holds them to its share when the container configures it (else they use the container's throughput as any request)"
            ),
            None => String::new(),
        } + if control.low_priority {
            ", which Cosmos throttles before the live API's only when priority-based execution is enabled on the account (otherwise the priority is ignored)"
        } else {
            ""
        }
    );
    let archive = BlobArchive::new(&settings.stores, transport).context("building the Blob client")?;
    if writes {
        archive.ensure_container().await.context("creating the archive container")?;
    }
    Ok(Archiver { cosmos, archive: Arc::new(archive), settings })
}
