//! `nexus-telemetry admin-token create|list|revoke`: the credentials of the admin API.

use serde_json::json;

use crate::cli::{ObjectArgs, migrated_store, output};
use clap::Subcommand;

use crate::config::DbArgs;
use crate::error::Error;

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create an admin API token and print it once (only its SHA-256 is stored)
    Create {
        /// Who or what the token is for
        #[arg(long)]
        name: String,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// List admin API tokens (metadata only)
    List {
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke an admin API token (idempotent)
    Revoke {
        /// The token's id
        id: i64,
        #[command(flatten)]
        args: ObjectArgs,
    },
}

/// Longest admin token name (the `admin_tokens.name` CHECK).
const MAX_NAME_CHARS: usize = 255;

pub async fn run(command: AdminTokenCommand) -> anyhow::Result<()> {
    match command {
        AdminTokenCommand::Create {
            name,
            args: ObjectArgs { json, db },
        } => {
            if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
                return Err(Error::invalid(
                    "name",
                    format!("must be 1 to {MAX_NAME_CHARS} characters"),
                )
                .into());
            }
            let issued = migrated_store(&db).await?.create_admin_token(&name).await?;
            output::issued_token(
                json,
                &json!({
                    "id": issued.info.id,
                    "name": issued.info.name,
                    "created_at": issued.info.created_at,
                    "token": issued.token.plaintext,
                }),
                &issued.token.plaintext,
                &format!("admin token {} ({})", issued.info.id, issued.info.name),
            )?;
        }
        AdminTokenCommand::List { json, db } => {
            let tokens = migrated_store(&db).await?.list_admin_tokens().await?;
            if json {
                output::json(&tokens)?;
            } else {
                let rows: Vec<[String; 5]> = tokens
                    .iter()
                    .map(|token| {
                        [
                            token.id.to_string(),
                            token.name.clone(),
                            output::time(Some(token.created_at)),
                            output::time(token.last_used_at),
                            output::time(token.revoked_at),
                        ]
                    })
                    .collect();
                output::table(["ID", "NAME", "CREATED", "LAST USED", "REVOKED"], &rows);
            }
        }
        AdminTokenCommand::Revoke {
            id,
            args: ObjectArgs { json, db },
        } => {
            let info = migrated_store(&db).await?.revoke_admin_token(id).await?;
            if json {
                output::json(&info)?;
            } else {
                println!(
                    "admin token {} ({}) revoked at {}",
                    info.id,
                    info.name,
                    output::time(info.revoked_at)
                );
            }
        }
    }
    Ok(())
}
