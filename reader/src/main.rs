//! `reader`: serves the billing-records read API as a custom handler.

use clap::Parser;
use tiering::settings::{Env, ReaderSettings, handler_port};
use tiering::store::Transport;

#[derive(Debug, Parser)]
#[command(version, about = "Serves billing records from Cosmos DB, falling back to the Blob archive")]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tiering::telemetry::init(&tiering::settings::LogSettings::from_env(), tiering::telemetry::Stream::Stdout);
    Cli::parse();
    let settings = ReaderSettings::from_env()?;
    let (cosmos, archive) = settings.stores.credentials();
    tracing::info!(
        cosmos = %cosmos,
        archive = %archive,
        contract = %settings.contract_source,
        partition_key = %settings.stores.partition_key,
        "reader signs in to Cosmos DB with {cosmos} and to the archive with {archive}; contract: {}",
        settings.contract_source
    );
    let port = handler_port(&Env)?;
    let tiers = reader::startup::build(&settings, Transport::INTERACTIVE).await?;
    let (listener, addr) = tiering::host::bind(port).await?;
    tracing::info!(%addr, "reader listening");
    tiering::host::serve(listener, reader::router(tiers), tiering::telemetry::shutdown_signal()).await
}
