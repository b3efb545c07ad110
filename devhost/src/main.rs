//! `devhost`: assemble a function app folder, or run one under the host stand-in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use devhost::app::{AppFolder, assemble};
use devhost::host::Host;

#[derive(Debug, Parser)]
#[command(about = "Azure Functions host stand-in for the billing apps (local use only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an app folder: host.json, the app's function folders, local.settings.json, the executable.
    Assemble {
        /// `archiver` or `reader` (a folder under function-definitions/).
        #[arg(long)]
        app: String,
        #[arg(long)]
        executable: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// The read contract profile (contract.toml); the default profile when absent.
        #[arg(long)]
        contract: Option<PathBuf>,
    },
    /// Print the OpenAPI document (JSON) of a contract profile, derived from reader/openapi.yaml.
    Openapi {
        #[arg(long)]
        contract: PathBuf,
    },
    /// Start an app folder's handler and serve its HTTP functions until Ctrl-C.
    Start {
        dir: PathBuf,
        #[arg(long, default_value_t = 7071)]
        port: u16,
    },
    /// Start an app folder's handler, fire one timer invocation, print its ReturnValue, stop.
    Timer { dir: PathBuf, function: String },
}

/// The developer's environment overrides local.settings.json, as with `func start`.
fn overrides(app: &AppFolder) -> BTreeMap<String, String> {
    app.settings.keys().filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v))).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tiering::telemetry::init(&tiering::settings::LogSettings::from_env(), tiering::telemetry::Stream::Stdout);
    match Cli::parse().command {
        Command::Assemble { app, executable, out, contract } => {
            assemble(&devhost::repo_root(), &app, &executable, &out, contract.as_deref())?;
            println!("{}", out.display());
        }
        Command::Openapi { contract } => {
            let text = std::fs::read_to_string(&contract).with_context(|| format!("{}", contract.display()))?;
            let profile = tiering::contract::Contract::parse(&text)?;
            let spec = devhost::openapi::for_profile(&devhost::openapi::default_document()?, &profile);
            println!("{}", serde_json::to_string_pretty(&spec)?);
        }
        Command::Start { dir, port } => {
            let app = AppFolder::load(&dir)?;
            let env = overrides(&app);
            let host = Host::start(app, &env).await?;
            let addr = host.serve_http(port).await?;
            println!("serving {} on http://{addr}/ (Ctrl-C stops)", dir.display());
            tokio::signal::ctrl_c().await?;
            host.stop().await?;
        }
        Command::Timer { dir, function } => {
            let app = AppFolder::load(&dir)?;
            let env = overrides(&app);
            let host = Host::start(app, &env).await?;
            let result = host.fire_timer(&function).await.context("timer invocation")?;
            host.stop().await?;
            println!("{}", serde_json::to_string_pretty(&result.return_value)?);
            anyhow::ensure!((200..300).contains(&result.status), "the invocation failed with HTTP {}", result.status);
        }
    }
    Ok(())
}
