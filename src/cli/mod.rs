//! The binary's commands: serve, migrate, print the OpenAPI document. Managing hosts, agent
//! tokens and admin tokens lives in one file per command group, its grammar beside its code;
//! those call the same store functions as the admin API, and print its JSON shapes with `--json`.

mod admin_token;
mod alert;
mod alert_rule;
mod host;
mod output;
mod token;

use std::process::ExitCode;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use clap::{Args, Parser, Subcommand};

use crate::config::{DbArgs, LogFormat, ServeArgs};
use crate::error::Error;
use crate::startup::Application;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "nexus-telemetry",
    version,
    about = "Ingests host and Docker-container telemetry into TimescaleDB"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations (unless --no-migrate), then serve the HTTP API
    // Boxed: the server's settings outweigh every other command's.
    Serve(Box<ServeArgs>),
    /// Apply the database migrations and exit
    Migrate(DbArgs),
    /// Print the OpenAPI document (YAML; JSON with --json)
    Openapi {
        /// Print JSON instead of YAML
        #[arg(long)]
        json: bool,
    },
    /// Manage monitored hosts
    #[command(subcommand)]
    Host(host::HostCommand),
    /// Manage agent tokens
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage admin API tokens (the credential of `/api/v1`)
    #[command(subcommand)]
    AdminToken(admin_token::AdminTokenCommand),
    /// Manage alert rules (what `/api/v1/alert-rules` manages)
    #[command(subcommand)]
    AlertRule(alert_rule::AlertRuleCommand),
    /// List, acknowledge and silence alerts (what `/api/v1/alerts` serves)
    #[command(subcommand)]
    Alert(alert::AlertCommand),
}

pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(Error::Validation(errors)) = error.downcast_ref::<Error>() {
                for error in errors {
                    eprintln!("  {}: {}", error.field, error.message);
                }
            }
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(db) => {
            init_logging(LogFormat::Human);
            Store::new(&db.settings())?.migrate().await
        }
        Command::Openapi { json } => {
            let document = crate::startup::openapi_document();
            // The YAML ends with its own newline: the committed file is the served text, byte
            // for byte.
            if json {
                println!("{}", document.json);
            } else {
                print!("{}", document.yaml);
            }
            Ok(())
        }
        Command::Host(command) => host::run(command).await,
        Command::Token(command) => token::run(command).await,
        Command::AdminToken(command) => admin_token::run(command).await,
        Command::AlertRule(command) => alert_rule::run(command).await,
        Command::Alert(command) => alert::run(command).await,
    }
}

/// The options of every command that prints one object: `--json` and the database.
#[derive(Debug, Args)]
pub struct ObjectArgs {
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// A listing's paging and output flags, shared by every `list` command.
#[derive(clap::Args, Debug)]
pub struct PageArgs {
    /// Items per page
    #[arg(long, default_value_t = crate::domain::host::default_page_size())]
    pub limit: u32,
    /// Where to continue: the `next_cursor` of the previous page
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the page as JSON (`{"items": [...], "next_cursor": ...}`) instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

async fn migrated_store(db: &DbArgs) -> anyhow::Result<Store> {
    let store = Store::new(&db.settings())?;
    store.migrate().await?;
    Ok(store)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let app = Application::build(&args).await?;
    app.run(shutdown_signal()).await.context("Server failed")
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("NEXUS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
