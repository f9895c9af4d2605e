//! `nexus-telemetry alert list|show|ack|silence`: the alerts of `/api/v1/alerts`, through the
//! same store functions and listing filter.

use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::cli::{ObjectArgs, PageArgs, migrated_store, output};
use crate::domain::alert_rule::name_of;
use crate::domain::host::Cursor;
use crate::store::alerts::{Alert, AlertState, alert_filter};

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// List alerts, newest first: what is open now unless --state or --history says otherwise
    List {
        /// Only alerts in this state; repeat for several (default: pending and firing)
        #[arg(long = "state", value_enum)]
        states: Vec<AlertState>,
        /// Only resolved alerts: the history
        #[arg(long)]
        history: bool,
        /// Only alerts of this rule
        #[arg(long)]
        rule_id: Option<i64>,
        /// Only alerts about this host
        #[arg(long)]
        host_id: Option<i64>,
        /// Only alerts about this container (Docker's id)
        #[arg(long)]
        container_id: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one alert
    Show {
        /// The alert's id
        id: i64,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// Acknowledge an open alert (writes an `alert_acknowledged` event)
    Ack {
        /// The alert's id
        id: i64,
        /// Who acknowledges, as `acknowledged_by` records it
        #[arg(long, default_value = "cli")]
        by: String,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// Hold back an open alert's notifications until a time; without --until, clear the
    /// silence
    Silence {
        /// The alert's id
        id: i64,
        /// The end of the silence (RFC 3339); a time already past clears it
        #[arg(long)]
        until: Option<DateTime<Utc>>,
        #[command(flatten)]
        args: ObjectArgs,
    },
}

pub async fn run(command: AlertCommand) -> anyhow::Result<()> {
    match command {
        AlertCommand::List {
            states,
            history,
            rule_id,
            host_id,
            container_id,
            page: paging,
        } => {
            let filter = alert_filter(
                states,
                history,
                rule_id,
                host_id,
                container_id,
                paging.cursor.as_deref(),
                paging.limit,
            )?;
            let page = migrated_store(&paging.db)
                .await?
                .list_alerts(&filter)
                .await?;
            output::page(
                paging.json,
                &page.items,
                page.next.map(Cursor::encode),
                "alerts",
                [
                    "ID", "STATE", "SEVERITY", "RULE", "SUBJECT", "SINCE", "ACKED",
                ],
                |alert| {
                    [
                        alert.id.to_string(),
                        name_of(alert.state),
                        name_of(alert.severity),
                        alert.rule_name.clone(),
                        subject_text(alert),
                        output::time(alert.started_at.or(Some(alert.pending_since))),
                        if alert.acknowledged_at.is_some() {
                            "yes"
                        } else {
                            "no"
                        }
                        .into(),
                    ]
                },
            )?;
        }
        AlertCommand::Show {
            id,
            args: ObjectArgs { json, db },
        } => print_alert(&migrated_store(&db).await?.alert(id).await?, json)?,
        AlertCommand::Ack {
            id,
            by,
            args: ObjectArgs { json, db },
        } => {
            let alert = migrated_store(&db)
                .await?
                .acknowledge_alert(id, &by)
                .await?;
            print_alert(&alert, json)?;
        }
        AlertCommand::Silence {
            id,
            until,
            args: ObjectArgs { json, db },
        } => {
            let alert = migrated_store(&db).await?.silence_alert(id, until).await?;
            print_alert(&alert, json)?;
        }
    }
    Ok(())
}

fn subject_text(alert: &Alert) -> String {
    let subject = &alert.subject;
    match (&subject.container_id, &subject.container_name) {
        (Some(_), Some(name)) => format!("{}/{name}", subject.host_name),
        (Some(id), None) => format!("{}/{id}", subject.host_name),
        _ => subject.host_name.clone(),
    }
}

fn print_alert(alert: &Alert, json: bool) -> anyhow::Result<()> {
    output::object(json, alert, 15, || {
        [
            ("id", alert.id.to_string()),
            ("state", name_of(alert.state)),
            ("rule", format!("{} ({})", alert.rule_name, alert.rule_id)),
            ("kind", name_of(alert.kind)),
            ("severity", name_of(alert.severity)),
            ("summary", alert.summary.clone()),
            ("subject", subject_text(alert)),
            ("value", output::or_dash(alert.value.map(|v| v.to_string()))),
            ("pending since", output::time(Some(alert.pending_since))),
            ("started", output::time(alert.started_at)),
            ("resolved", output::time(alert.resolved_at)),
            ("acknowledged", output::time(alert.acknowledged_at)),
            ("by", output::or_dash(alert.acknowledged_by.clone())),
            ("silenced until", output::time(alert.silenced_until)),
            ("fingerprint", alert.fingerprint.clone()),
        ]
    })
}
