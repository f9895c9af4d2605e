//! The binary's commands: serve, migrate, print the OpenAPI document, manage hosts and tokens.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use tracing_subscriber::EnvFilter;

use crate::api;
use crate::config::{Cli, Command, DbArgs, HostCommand, LogFormat, ServeArgs, TokenCommand};
use crate::startup::Application;
use crate::store::{Store, hosts::slugify};

pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(db) => {
            init_logging(LogFormat::Human);
            Store::new(&db.settings())?.migrate().await
        }
        Command::Openapi { json } => {
            let service = api::openapi();
            println!(
                "{}",
                if json {
                    service.spec()
                } else {
                    service.spec_yaml()
                }
            );
            Ok(())
        }
        Command::Host(HostCommand::Create {
            name,
            slug,
            json,
            db,
        }) => {
            let store = migrated_store(&db).await?;
            let slug = slug.unwrap_or_else(|| slugify(&name));
            let host = store.create_host(&name, &slug).await?;
            if json {
                println!("{}", serde_json::to_string(&host)?);
            } else {
                println!(
                    "created host {} ({}) with id {}, status {}",
                    host.name, host.slug, host.id, host.status
                );
            }
            Ok(())
        }
        Command::Token(TokenCommand::Issue {
            host,
            name,
            json,
            db,
        }) => {
            let store = migrated_store(&db).await?;
            let issued = store
                .issue_agent_token(host, &name)
                .await
                .context("Failed to issue the token")?;
            if json {
                let out = json!({
                    "id": issued.id,
                    "host_id": issued.host_id,
                    "name": issued.name,
                    "created_at": issued.created_at,
                    "token": issued.token.plaintext,
                });
                println!("{out}");
            } else {
                println!("{}", issued.token.plaintext);
                eprintln!(
                    "token {} for host {host}: shown once, store it now (only its hash is kept)",
                    issued.id
                );
            }
            Ok(())
        }
    }
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
