//! `archiver`: serve as a custom handler (default), or `archiver run [--dry-run]` once by hand.

use anyhow::Context;
use archiver::{handler, startup};
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
    /// Run one archive pass now, print its summary as JSON, exit non-zero if it failed.
    Run {
        /// Report what would move; write nothing (overrides ARCHIVE_DRY_RUN).
        #[arg(long)]
        dry_run: bool,
    },
    /// Download and check every archived copy (or one customer's); exit non-zero if any is corrupt.
    Verify {
        #[arg(long)]
        customer: Option<String>,
    },
    /// Copy one archived record back into Cosmos (create only; the copy is checked first).
    Restore {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        id: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tiering::telemetry::init();
    let cli = Cli::parse();
    let settings = ArchiverSettings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let port = handler_port(&Env)?;
            let archiver = startup::build(settings, Transport::BATCH).await?;
            let (listener, addr) = tiering::host::bind(port).await?;
            tracing::info!(%addr, "archiver listening");
            axum::serve(listener, handler::router(archiver))
                .with_graceful_shutdown(tiering::telemetry::shutdown_signal())
                .await
                .context("serving")?;
        }
        Command::Run { dry_run } => {
            let dry_run = dry_run || settings.dry_run;
            let archiver = startup::build(settings, Transport::BATCH).await?;
            let summary = archiver.run(chrono::Utc::now(), dry_run).await;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            if summary.is_failure() {
                std::process::exit(1);
            }
        }
        Command::Verify { customer } => {
            let archiver = startup::build(settings, Transport::BATCH).await?;
            let report = archiver::ops::verify(&archiver, customer.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.corrupt.is_empty() {
                std::process::exit(1);
            }
        }
        Command::Restore { customer, id } => {
            let archiver = startup::build(settings, Transport::BATCH).await?;
            archiver::ops::restore(&archiver, &customer, &id).await?;
            println!("restored {id:?} of {customer:?} to Cosmos");
        }
    }
    Ok(())
}
