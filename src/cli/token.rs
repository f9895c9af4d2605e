//! `nexus-telemetry token issue|list|rotate|revoke`: a host's agent tokens.

use crate::cli::{ObjectArgs, migrated_store, output};
use clap::{Args, Subcommand};

use crate::config::DbArgs;
use crate::domain::checked;
use crate::domain::token::NewAgentToken;
use crate::store::tokens::{AgentTokenInfo, IssuedAgentToken};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint an agent token for a host and print it once (only its SHA-256 is stored)
    Issue {
        /// Id of the host the token authenticates
        #[arg(long)]
        host: i64,
        /// Label to tell tokens apart
        #[arg(long, default_value = "default")]
        name: String,
        /// Bind the token to the address and User-Agent of its first admitted request (later
        /// requests from another client get 401); a rotation keeps the option, unbound
        #[arg(long)]
        bind_fingerprint: bool,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// List a host's tokens (metadata only; never the plaintext or the hash)
    List {
        /// Id of the host
        #[arg(long)]
        host: i64,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a token and issue its replacement, printed once
    Rotate(HostToken),
    /// Revoke a token (idempotent)
    Revoke(HostToken),
}

/// One of a host's tokens, as `rotate` and `revoke` name it.
#[derive(Debug, Args)]
pub struct HostToken {
    /// Id of the host
    #[arg(long)]
    host: i64,
    /// Id of the token
    #[arg(long)]
    token: i64,
    #[command(flatten)]
    args: ObjectArgs,
}

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue {
            host,
            name,
            bind_fingerprint,
            args: ObjectArgs { json, db },
        } => {
            let request = checked(&NewAgentToken {
                name,
                bind_fingerprint: Some(bind_fingerprint),
            })?;
            let store = migrated_store(&db).await?;
            let issued = store
                .issue_agent_token(host, &request.name, request.binds_fingerprint())
                .await
                .map_err(|error| anyhow::Error::new(error).context("Failed to issue the token"))?;
            print_issued(issued.into(), json, "issued")?;
        }
        TokenCommand::List { host, json, db } => {
            let tokens = migrated_store(&db).await?.list_agent_tokens(host).await?;
            if json {
                output::json(&tokens)?;
            } else {
                let rows: Vec<[String; 6]> = tokens.iter().map(row).collect();
                output::table(
                    [
                        "ID",
                        "NAME",
                        "CREATED",
                        "LAST USED",
                        "REVOKED",
                        "FINGERPRINT",
                    ],
                    &rows,
                );
            }
        }
        TokenCommand::Rotate(HostToken {
            host,
            token,
            args: ObjectArgs { json, db },
        }) => {
            let issued = migrated_store(&db)
                .await?
                .rotate_agent_token(host, token)
                .await?;
            print_issued(
                issued.into(),
                json,
                &format!("replaces token {token} and was issued"),
            )?;
        }
        TokenCommand::Revoke(HostToken {
            host,
            token,
            args: ObjectArgs { json, db },
        }) => {
            let info = migrated_store(&db)
                .await?
                .revoke_agent_token(host, token)
                .await?;
            if json {
                output::json(&info)?;
            } else {
                println!(
                    "token {} of host {} revoked at {}",
                    info.id,
                    info.host_id,
                    output::time(info.revoked_at)
                );
            }
        }
    }
    Ok(())
}

fn print_issued(issued: IssuedAgentToken, json: bool, what: &str) -> anyhow::Result<()> {
    let about = format!("token {} for host {} {what}", issued.id, issued.host_id);
    output::issued_token(json, &issued, &issued.token, &about)
}

fn row(token: &AgentTokenInfo) -> [String; 6] {
    let binding = match (token.bind_fingerprint, token.fingerprint_bound) {
        (false, _) => "-",
        (true, false) => "binds on first use",
        (true, true) => "bound",
    };
    [
        token.id.to_string(),
        token.name.clone(),
        output::time(Some(token.created_at)),
        output::time(token.last_used_at),
        output::time(token.revoked_at),
        binding.to_owned(),
    ]
}
