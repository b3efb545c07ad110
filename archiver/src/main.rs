//! `archiver`: serve as a custom handler (default), or run one of the operator
//! commands (docs/operations.md).

use std::time::Duration;

use anyhow::Context;
use archiver::run::RunStatus;
use archiver::{handler, ops, startup};
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
        #[arg(long)]
        customer: Option<String>,
        /// Instead of downloading copies, find those Cosmos shadows with another
        /// version and withdraw them (each only if unchanged since listed).
        #[arg(long)]
        shadowed: bool,
        /// With --shadowed: report only, withdraw nothing.
        #[arg(long, requires = "shadowed")]
        dry_run: bool,
        /// With --shadowed: seconds to wait for an archive run in progress to end.
        #[arg(long, default_value_t = ops::DEFAULT_PATIENCE.as_secs())]
        wait: u64,
    },
    /// Erase one record from both tiers. Without --confirm, only reports where it is.
    Forget {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        id: String,
        /// Really delete.
        #[arg(long)]
        confirm: bool,
        /// Seconds to wait for an archive run in progress to end.
        #[arg(long, default_value_t = ops::DEFAULT_PATIENCE.as_secs())]
        wait: u64,
    },
    /// Copy one archived record back into Cosmos (create only; the copy is checked
    /// first, and withdrawn after).
    Restore {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        id: String,
        /// Seconds to wait for an archive run in progress to end.
        #[arg(long, default_value_t = ops::DEFAULT_PATIENCE.as_secs())]
        wait: u64,
    },
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tiering::telemetry::init();
    let cli = Cli::parse();
    let settings = ArchiverSettings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let port = handler_port(&Env)?;
            let (listener, addr) = tiering::host::bind(port).await?;
            tracing::info!(%addr, "archiver listening");
            axum::serve(listener, handler::router_connecting_on_demand(settings, Transport::BATCH))
                .with_graceful_shutdown(tiering::telemetry::shutdown_signal())
                .await
                .context("serving")?;
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
        Command::Verify { customer, shadowed, dry_run, wait } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            let problems = if shadowed {
                let patience = Duration::from_secs(wait);
                let report = ops::shadowed(&archiver, customer.as_deref(), !dry_run, patience).await?;
                print_json(&report)?;
                report.withdraw_failed > 0 || (dry_run && !report.shadowed.is_empty())
            } else {
                let report = ops::verify(&archiver, customer.as_deref()).await?;
                print_json(&report)?;
                !report.corrupt.is_empty()
            };
            if problems {
                std::process::exit(1);
            }
        }
        Command::Forget { customer, id, confirm, wait } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            print_json(&ops::forget(&archiver, &customer, &id, confirm, Duration::from_secs(wait)).await?)?;
        }
        Command::Restore { customer, id, wait } => {
            let archiver = startup::build(settings, Transport::BATCH, false).await?;
            ops::restore(&archiver, &customer, &id, Duration::from_secs(wait)).await?;
            println!("restored {id:?} of {customer:?} to Cosmos");
        }
    }
    Ok(())
}
