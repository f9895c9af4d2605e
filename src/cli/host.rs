//! `nexus-telemetry host create|list|show|update|archive`.

use crate::cli::{ObjectArgs, PageArgs, migrated_store, output};
use clap::Subcommand;

use crate::domain::checked;
use crate::domain::host::HostStatus;
use crate::domain::host::{Cursor, HostLabels, HostUpdate, NewHost};
use crate::error::Error;
use crate::store::hosts::{Host, host_filter, slugify};

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Create a host in status `pending`
    Create {
        /// Display name
        #[arg(long)]
        name: String,
        /// Unique URL-safe identifier (default: derived from the name)
        #[arg(long)]
        slug: Option<String>,
        /// A label, `KEY=VALUE`; repeat for several
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// List hosts, ordered by id, one page at a time
    List {
        /// Only hosts in this status
        #[arg(long, value_enum)]
        status: Option<HostStatus>,
        /// Only hosts carrying this label, `KEY:VALUE`; repeat to require several
        #[arg(long = "label", value_name = "KEY:VALUE")]
        labels: Vec<String>,
        /// Only hosts whose name contains this text (case-insensitive)
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one host
    Show {
        /// The host's id
        id: i64,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// Rename a host and/or replace its labels
    Update {
        /// The host's id
        id: i64,
        /// New display name
        #[arg(long)]
        name: Option<String>,
        /// A label, `KEY=VALUE`; repeat for several. Replaces all current labels
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Remove every label
        #[arg(long, conflicts_with = "labels")]
        clear_labels: bool,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// Archive a host and revoke all its tokens (idempotent)
    Archive {
        /// The host's id
        id: i64,
        #[command(flatten)]
        args: ObjectArgs,
    },
}

pub async fn run(command: HostCommand) -> anyhow::Result<()> {
    match command {
        HostCommand::Create {
            name,
            slug,
            labels,
            args: ObjectArgs { json, db },
        } => {
            let request: NewHost = checked(&NewHost {
                slug: Some(slug.unwrap_or_else(|| slugify(&name))),
                name,
                labels: Some(assignments(&labels)?),
            })?;
            let store = migrated_store(&db).await?;
            let host = store
                .create_host_with_labels(
                    &request.name,
                    request.slug.as_deref().unwrap_or_default(),
                    &request.labels.unwrap_or_default(),
                )
                .await?;
            if json {
                output::json(&host)?;
            } else {
                println!(
                    "created host {} ({}) with id {}, status {}",
                    host.name, host.slug, host.id, host.status
                );
            }
        }
        HostCommand::List {
            status,
            labels,
            name,
            page: paging,
        } => {
            let filter = host_filter(
                status,
                &labels,
                name.as_deref(),
                paging.cursor.as_deref(),
                paging.limit,
            )?;
            let store = migrated_store(&paging.db).await?;
            let page = store.list_hosts(&filter).await?;
            output::page(
                paging.json,
                &page.items,
                page.next.map(Cursor::encode),
                "hosts",
                ["ID", "SLUG", "NAME", "STATUS", "LAST SEEN", "LABELS"],
                |host| {
                    [
                        host.id.to_string(),
                        host.slug.clone(),
                        host.name.clone(),
                        host.status.to_string(),
                        output::time(host.last_seen_at),
                        labels_text(&host.labels),
                    ]
                },
            )?;
        }
        HostCommand::Show {
            id,
            args: ObjectArgs { json, db },
        } => {
            let host = migrated_store(&db).await?.host(id).await?;
            print_host(&host, json)?;
        }
        HostCommand::Update {
            id,
            name,
            labels,
            clear_labels,
            args: ObjectArgs { json, db },
        } => {
            let labels = if clear_labels {
                Some(HostLabels::new())
            } else if labels.is_empty() {
                None
            } else {
                Some(assignments(&labels)?)
            };
            let request: HostUpdate = checked(&HostUpdate { name, labels })?;
            let host = migrated_store(&db)
                .await?
                .update_host(id, request.name.as_deref(), request.labels.as_ref())
                .await?;
            print_host(&host, json)?;
        }
        HostCommand::Archive {
            id,
            args: ObjectArgs { json, db },
        } => {
            let host = migrated_store(&db).await?.archive_host(id).await?;
            print_host(&host, json)?;
        }
    }
    Ok(())
}

/// Labels written `KEY=VALUE` (split at the first `=`).
pub(super) fn assignments(labels: &[String]) -> Result<HostLabels, Error> {
    labels
        .iter()
        .map(|label| match label.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(Error::invalid(
                "label",
                format!("`{label}` must be KEY=VALUE with a non-empty key"),
            )),
        })
        .collect()
}

fn labels_text(labels: &HostLabels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if pairs.is_empty() {
        "-".into()
    } else {
        pairs.join(",")
    }
}

fn print_host(host: &Host, json: bool) -> anyhow::Result<()> {
    output::object(json, host, 10, || {
        [
            ("id", host.id.to_string()),
            ("name", host.name.clone()),
            ("slug", host.slug.clone()),
            ("status", host.status.to_string()),
            ("labels", labels_text(&host.labels)),
            ("last seen", output::time(host.last_seen_at)),
            (
                "cpus",
                output::or_dash(host.cpu_count.map(|n| n.to_string())),
            ),
            (
                "memory",
                output::or_dash(host.memory_total_mb.map(|n| format!("{n} MiB"))),
            ),
            (
                "disk",
                output::or_dash(host.disk_total_gb.map(|n| format!("{n} GiB"))),
            ),
            ("os", output::or_dash(host.os.clone())),
            ("docker", output::or_dash(host.docker_version.clone())),
            ("archived", output::time(host.archived_at)),
            ("created", output::time(Some(host.created_at))),
            ("updated", output::time(Some(host.updated_at))),
        ]
    })
}
