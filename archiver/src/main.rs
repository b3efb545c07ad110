//! `archiver`: serve as a custom handler (default), or run one of the operator
//! commands (docs/operations.md).

use std::time::Duration;

use archiver::run::RunStatus;
use archiver::{handler, holds, ops, plan, startup};
use clap::{Parser, Subcommand};
use tiering::settings::{ArchiverSettings, Env, handler_port};
use tiering::store::Transport;

#[derive(Debug, Parser)]
#[command(version, about = "Moves aged billing records from Cosmos DB to Blob Storage")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Functions host on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (the default).
    Serve,
    /// Run one archive pass now, print its summary as JSON. Exit 1 if it failed,
    /// 3 if another pass holds the run lease.
    Run {
        /// Report what would move; write nothing at all (overrides ARCHIVE_DRY_RUN).
        #[arg(long)]
        dry_run: bool,
    },
    /// Check archived copies (or one customer's). Exit 1 on any problem found.
    Verify {
        /// A partition-key value (a customer, with the default contract).
        #[arg(long = "partition-key", visible_alias = "customer")]
        customer: Option<String>,
        /// Instead of downloading copies, find those whose record Cosmos holds
        /// too, and report each pair: the same version, a version Cosmos has
        /// superseded, or a conflict (the copy is newer). Withdraws nothing
        /// unless --withdraw.
        #[arg(long)]
        shadowed: bool,
        /// With --shadowed: delete the copies of the same or a superseded version
        /// (each at the ETag it was listed with, under the run lease). Conflicts
        /// and partitions on hold are always kept.
        #[arg(long, requires = "shadowed")]
        withdraw: bool,
        /// With --withdraw and --partition-key: conflicts too (copies newer than,
        /// or of the same second as, Cosmos's version): a person decided that
        /// Cosmos's versions are the right ones (docs/operations.md, "Conflicts").
        #[arg(long, requires_all = ["withdraw", "customer"])]
        prefer_cosmos: bool,
        /// With --shadowed: Cosmos was restored from a backup by copying records back
        /// at this time (RFC 3339, or a day): a Cosmos version written since then does
        /// not prove a copy stale, so it is a conflict (docs/operations.md, "Conflicts").
        #[arg(long, requires = "shadowed", value_parser = parse_instant)]
        restored_at: Option<chrono::DateTime<chrono::Utc>>,
        /// With --shadowed --withdraw: seconds to wait for an archive run in progress to end.
        #[arg(long, default_value_t = archiver::lease::DEFAULT_PATIENCE.as_secs())]
        wait: u64,
    },
    /// Erase one record from both tiers. Without --confirm, only reports where it is.
    Forget {
        /// A partition-key value (a customer, with the default contract).
        #[arg(long = "partition-key", visible_alias = "customer")]
        customer: String,
        #[arg(long)]
        id: String,
        /// Really delete.
        #[arg(long)]
        confirm: bool,
        /// Seconds to wait for an archive run in progress to end.
        #[arg(long, default_value_t = archiver::lease::DEFAULT_PATIENCE.as_secs())]
        wait: u64,
    },
    /// Copy archived records back into Cosmos: one (--id), all of a customer's
    /// (optionally within an age window), or the whole archive (--all, optionally
    /// only what was archived on or after a day). Create only (never overwrites);
    /// each copy is checked first and withdrawn after. Resumable: run it again to finish.
    Restore {
        /// A partition-key value (a customer, with the default contract).
        #[arg(long = "partition-key", visible_alias = "customer", required_unless_present = "all")]
        customer: Option<String>,
        #[arg(long, conflicts_with_all = ["from", "to"])]
        id: Option<String>,
        /// First day (inclusive) of the age field.
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day (inclusive) of the age field.
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// Every archived record (a rollback: pause the archiver first). Saves its
        /// position after each page of the listing and goes on from there when run
        /// again; paced by ARCHIVE_MAX_RU_PER_SECOND; progress on stderr.
        #[arg(long, conflicts_with_all = ["customer", "id", "from", "to"])]
        all: bool,
        /// With --all: only copies archived on or after this day (UTC).
        #[arg(long, requires = "all")]
        archived_after: Option<chrono::NaiveDate>,
        /// With --all: start from the beginning, not from where the last one stopped.
        #[arg(long, requires = "all")]
        restart: bool,
        /// Report what would be restored; write nothing.
        #[arg(long, conflicts_with = "id")]
        dry_run: bool,
        /// Seconds to wait for an archive run in progress to end.
        #[arg(long, default_value_t = archiver::lease::DEFAULT_PATIENCE.as_secs())]
        wait: u64,
    },
    /// Put a partition-key value (a customer) on hold, or release it, or list the
    /// holds: while on hold, none of its archived records is expired
    /// (ARCHIVE_RETENTION_DAYS) or erased (forget). Prints JSON.
    Hold {
        /// A partition-key value (a customer, with the default contract).
        #[arg(long = "partition-key", visible_alias = "customer", required_unless_present = "list")]
        customer: Option<String>,
        /// Release the hold instead.
        #[arg(long, conflicts_with_all = ["list", "reason"])]
        release: bool,
        /// List every hold.
        #[arg(long, conflicts_with = "customer")]
        list: bool,
        /// Why (a case number): kept with the hold.
        #[arg(long)]
        reason: Option<String>,
        /// Seconds to wait for an archive run in progress to end (a hold is placed under the run lease).
        #[arg(long, default_value_t = archiver::lease::DEFAULT_PATIENCE.as_secs())]
        wait: u64,
    },
    /// What archiving would do now: counts per month, bytes, compression, request
    /// units, time (from a timed trial of the run without its deletes) and runs,
    /// storage cost before and after. Changes nothing in Cosmos.
    Plan {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Print the table and write the JSON to this file (one plan, both forms).
        #[arg(long, conflicts_with = "json")]
        json_out: Option<std::path::PathBuf>,
        /// Whole records read for sizes, compression and charges.
        #[arg(long, default_value_t = 1000)]
        sample: usize,
        /// Stop counting after spending this many request units (counts become a lower bound).
        #[arg(long, default_value_t = 200_000.0)]
        max_ru: f64,
        /// A delete costs this many point reads of the same item (measure yours with a staging run).
        #[arg(long, default_value_t = 5.0)]
        delete_ru_factor: f64,
        /// Seconds for the trial of the archive pass: the run's own pass over
        /// the aged records without its deletes, copies written under
        /// state/plan-trial/ and deleted after (docs/operations.md, "Planning").
        #[arg(long, default_value_t = 20.0, value_parser = trial_seconds)]
        trial_seconds: f64,
        /// USD per GB-month of Cosmos DB storage.
        #[arg(long, default_value_t = plan::Prices::default().cosmos_gb_month)]
        cosmos_gb_price: f64,
        /// USD per GB-month in the archive's blob tier (Cool).
        #[arg(long, default_value_t = plan::Prices::default().blob_gb_month)]
        blob_gb_price: f64,
        /// USD per 10,000 blob write operations.
        #[arg(long, default_value_t = plan::Prices::default().blob_writes_per_10k)]
        blob_write_price: f64,
        /// USD per 10,000 blob read operations.
        #[arg(long, default_value_t = plan::Prices::default().blob_reads_per_10k)]
        blob_read_price: f64,
        /// USD per million request units.
        #[arg(long, default_value_t = plan::Prices::default().request_units_per_million)]
        ru_price: f64,
    },
}

/// A trial's length: 1 to 600 seconds.
fn trial_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (1.0..=600.0).contains(&s) => Ok(s),
        _ => Err(format!("`{text}` is not a number of seconds from 1 to 600")),
    }
}

/// An instant as RFC 3339, or a day (its start, UTC).
fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{text}` is neither RFC 3339 (2026-11-30T08:00:00Z) nor a day (2026-11-30)"))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The handler logs to stdout, where the host collects it; a command's stdout
    // is its result (JSON for scripts), so its logs go to stderr.
    let stream = match cli.command {
        None | Some(Command::Serve) => tiering::telemetry::Stream::Stdout,
        Some(_) => tiering::telemetry::Stream::Stderr,
    };
    tiering::telemetry::init(&tiering::settings::LogSettings::from_env(), stream);
    let settings = ArchiverSettings::from_env()?;
    let (cosmos, archive) = settings.stores.credentials();
    tracing::info!(cosmos = %cosmos, archive = %archive, partition_key = %settings.stores.partition_key, "archiver signs in to Cosmos DB with {cosmos} and to the archive with {archive}");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let port = handler_port(&Env)?;
            let (listener, addr) = tiering::host::bind(port).await?;
            tracing::info!(%addr, "archiver listening");
            let router = handler::router_connecting_now(settings, Transport::BATCH);
            tiering::host::serve(listener, router, tiering::telemetry::shutdown_signal()).await?;
        }
        Command::Run { dry_run } => {
            let dry_run = dry_run || settings.dry_run;
            let archiver = startup::build(settings, Transport::BATCH, !dry_run).await?;
            let summary = archiver.run(chrono::Utc::now(), dry_run).await;
            print_json(&summary)?;
            if summary.status == RunStatus::Skipped {
                std::process::exit(3);
            }
            if summary.is_failure() {
                std::process::exit(1);
            }
        }
        Command::Verify { customer, shadowed, withdraw, prefer_cosmos, restored_at, wait } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            let problems = if shadowed {
                let patience = Duration::from_secs(wait);
                let withdraw = match (withdraw, prefer_cosmos) {
                    (false, _) => ops::Withdraw::Nothing,
                    (true, false) => ops::Withdraw::Settled,
                    (true, true) => ops::Withdraw::PreferCosmos,
                };
                let report = ops::shadowed(&archiver, customer.as_deref(), withdraw, restored_at, patience).await?;
                print_json(&report)?;
                report.needs_attention()
            } else {
                let report = ops::verify(&archiver, customer.as_deref()).await?;
                print_json(&report)?;
                !report.corrupt.is_empty() || !report.unsupported_format.is_empty()
            };
            if problems {
                std::process::exit(1);
            }
        }
        Command::Forget { customer, id, confirm, wait } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            print_json(&ops::forget(&archiver, &customer, &id, confirm, Duration::from_secs(wait)).await?)?;
        }
        Command::Hold { list: true, .. } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            print_json(&serde_json::json!({"holds": holds::holds(archiver.archive.as_ref()).await?}))?;
        }
        Command::Hold { customer: Some(customer), release: true, .. } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            let released = holds::release(&archiver, &customer).await?;
            print_json(&serde_json::json!({"partitionKey": customer, "released": released}))?;
        }
        Command::Hold { customer: Some(customer), reason, wait, .. } => {
            let archiver = startup::build(settings, Transport::BATCH, true).await?;
            let now = chrono::Utc::now();
            let hold = holds::place(&archiver, &customer, reason.as_deref(), now, Duration::from_secs(wait)).await?;
            // A hold on a value nothing is archived under may be a typo: say how many copies it keeps.
            let prefix = tiering::layout::partition_prefix(&customer);
            let (copies, more) = archiver.archive.list_page(&prefix, None, 1000).await?;
            if copies.is_empty() {
                tracing::warn!(partition_key = %customer, "no archived record has this partition-key value (yet): is it spelled as the container stores it?");
            }
            let counted = if more.is_some() { serde_json::json!("1000+") } else { serde_json::json!(copies.len()) };
            print_json(&serde_json::json!({"held": hold, "archivedCopies": counted}))?;
        }
        Command::Hold { customer: None, .. } => anyhow::bail!("--customer or --list"),
        Command::Restore { all: true, archived_after, restart, dry_run, wait, .. } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            let patience = Duration::from_secs(wait);
            let options = ops::RestoreAll { archived_after, dry_run, restart, page: ops::RESTORE_PAGE };
            let report = ops::restore_all(&archiver, &options, patience, |r| {
                tracing::info!(
                    checked = r.checked,
                    matched = r.matched,
                    restored = r.restored,
                    already_in_cosmos = r.already_in_cosmos,
                    failed = r.failed_count,
                    request_units = r.request_units,
                    "restore progress"
                );
            })
            .await?;
            print_json(&report)?;
            if report.failed_count > 0 || report.left_in_archive > 0 {
                std::process::exit(1);
            }
        }
        Command::Restore { customer: None, .. } => anyhow::bail!("--partition-key or --all"),
        Command::Restore { customer: Some(customer), id: Some(id), wait, .. } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            let outcome = match ops::restore(&archiver, &customer, &id, Duration::from_secs(wait)).await? {
                tiering::moveback::MovedBack::AlreadyHot { stale_copy_deleted } => {
                    serde_json::json!({"alreadyInCosmos": {"partitionKey": customer, "id": id, "staleCopyDeleted": stale_copy_deleted}})
                }
                _ => serde_json::json!({"restored": {"partitionKey": customer, "id": id}}),
            };
            print_json(&outcome)?;
        }
        Command::Restore { customer: Some(customer), id: None, from, to, dry_run, wait, .. } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            let report =
                ops::restore_customer(&archiver, &customer, from, to, dry_run, Duration::from_secs(wait), |r| {
                    tracing::info!(
                        checked = r.checked,
                        restored = r.restored,
                        already_in_cosmos = r.already_in_cosmos,
                        failed = r.failed.len(),
                        "restore progress"
                    );
                })
                .await?;
            print_json(&report)?;
            if !report.failed.is_empty() {
                std::process::exit(1);
            }
        }
        Command::Plan {
            json,
            json_out,
            sample,
            max_ru,
            delete_ru_factor,
            trial_seconds,
            cosmos_gb_price,
            blob_gb_price,
            blob_write_price,
            blob_read_price,
            ru_price,
        } => {
            // Writes: the trial's copies need the archive container.
            let archiver = startup::build(settings, Transport::BATCH, true).await?;
            let prices = plan::Prices {
                cosmos_gb_month: cosmos_gb_price,
                blob_gb_month: blob_gb_price,
                blob_writes_per_10k: blob_write_price,
                blob_reads_per_10k: blob_read_price,
                request_units_per_million: ru_price,
            };
            let options =
                plan::PlanOptions { sample, max_request_units: max_ru, delete_ru_factor, trial_seconds, prices };
            let plan = plan::plan(&archiver, chrono::Utc::now(), &options).await?;
            if json {
                print_json(&plan)?;
            } else {
                print!("{}", plan::render(&plan));
            }
            if let Some(path) = json_out {
                std::fs::write(&path, serde_json::to_string_pretty(&plan)? + "\n")
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}
