//! `nexus-telemetry alert-rule list|show|create|update|delete`: the rules of
//! `/api/v1/alert-rules`, checked by the same definition ([`RuleDefinition::check`]).

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::cli::host::assignments;
use crate::cli::{ObjectArgs, PageArgs, migrated_store, output};
use crate::config::DbArgs;
use crate::domain::alert_rule::{
    Metric, Operator, RuleDefinition, RuleKind, Severity, ValidRule, name_of,
};
use crate::domain::host::{Cursor, page_cursor};
use crate::error::Error;
use crate::store::alert_rules::AlertRule;

#[derive(Debug, Subcommand)]
pub enum AlertRuleCommand {
    /// List alert rules, ordered by id, one page at a time
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one alert rule
    Show {
        /// The rule's id
        id: i64,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// Create an alert rule
    Create {
        /// Unique name
        #[arg(long)]
        name: String,
        /// What the rule watches
        #[arg(long, value_enum)]
        kind: RuleKind,
        #[command(flatten)]
        fields: RuleFields,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// Change an alert rule: given flags replace those fields; changing the kind drops the old
    /// kind's parameters
    Update {
        /// The rule's id
        id: i64,
        /// New unique name
        #[arg(long)]
        name: Option<String>,
        /// New kind
        #[arg(long, value_enum)]
        kind: Option<RuleKind>,
        #[command(flatten)]
        fields: RuleFields,
        /// Watch every host again (clears host ids and labels)
        #[arg(long, conflicts_with_all = ["host_ids", "host_labels"])]
        all_hosts: bool,
        #[command(flatten)]
        args: ObjectArgs,
    },
    /// Delete an alert rule and its alerts
    Delete {
        /// The rule's id
        id: i64,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// The flags of a rule's fields besides its name and kind; absent flags leave a field unset
/// (create: its default; update: as it is).
#[derive(Debug, Args)]
pub struct RuleFields {
    /// Only this host (its id); repeat for several
    #[arg(long = "host-id", value_name = "ID")]
    host_ids: Vec<i64>,
    /// Only hosts carrying this label, `KEY=VALUE`; repeat to require several
    #[arg(long = "host-label", value_name = "KEY=VALUE")]
    host_labels: Vec<String>,
    /// Seconds the condition must hold before the alert fires
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    for_seconds: Option<i64>,
    #[arg(long, value_enum)]
    severity: Option<Severity>,
    /// What a person reading the alert should know
    #[arg(long)]
    summary: Option<String>,
    /// Evaluate the rule (`--enabled false` to stop it)
    #[arg(long)]
    enabled: Option<bool>,
    /// container_not_running: exits with code 0 do not count
    #[arg(long)]
    ignore_exit_code_zero: Option<bool>,
    /// container_restarting: restarts within --window-seconds that fire
    #[arg(long, allow_negative_numbers = true)]
    restarts: Option<i64>,
    /// container_restarting: the window restarts are counted in, in seconds
    #[arg(long, allow_negative_numbers = true)]
    window_seconds: Option<i64>,
    /// metric_threshold: what is compared
    #[arg(long, value_enum)]
    metric: Option<Metric>,
    /// metric_threshold: how it is compared (gt, ge, lt, le)
    #[arg(long, value_enum)]
    operator: Option<Operator>,
    /// metric_threshold: the value compared with
    #[arg(long, allow_negative_numbers = true)]
    threshold: Option<f64>,
}

/// The kind-specific fields, dropped when an update changes the kind.
const PARAMETERS: [&str; 6] = [
    "ignore_exit_code_zero",
    "restarts",
    "window_seconds",
    "metric",
    "operator",
    "threshold",
];

impl RuleFields {
    /// Writes the given flags over `rule` (a rule as JSON, as the API receives it).
    fn write_over(self, rule: &mut Map<String, Value>) -> Result<(), Error> {
        if !self.host_ids.is_empty() {
            rule.insert("host_ids".into(), json!(self.host_ids));
        }
        if !self.host_labels.is_empty() {
            rule.insert("host_labels".into(), json!(assignments(&self.host_labels)?));
        }
        let mut set = |field: &str, value: Option<Value>| {
            if let Some(value) = value {
                rule.insert(field.into(), value);
            }
        };
        set("for_seconds", self.for_seconds.map(Value::from));
        set("severity", self.severity.map(|s| json!(s)));
        set("summary", self.summary.map(Value::from));
        set("enabled", self.enabled.map(Value::from));
        set(
            "ignore_exit_code_zero",
            self.ignore_exit_code_zero.map(Value::from),
        );
        set("restarts", self.restarts.map(Value::from));
        set("window_seconds", self.window_seconds.map(Value::from));
        set("metric", self.metric.map(|m| json!(m)));
        set("operator", self.operator.map(|o| json!(o)));
        set("threshold", self.threshold.map(Value::from));
        Ok(())
    }
}

/// A stored rule as the definition that would recreate it.
fn definition_of(rule: &AlertRule) -> Map<String, Value> {
    let definition = RuleDefinition {
        name: rule.name.clone(),
        kind: rule.kind,
        host_ids: rule.host_ids.clone(),
        host_labels: rule.host_labels.clone(),
        for_seconds: Some(rule.for_seconds),
        severity: Some(rule.severity),
        summary: Some(rule.summary.clone()),
        enabled: Some(rule.enabled),
        ignore_exit_code_zero: rule.ignore_exit_code_zero,
        restarts: rule.restarts,
        window_seconds: rule.window_seconds,
        metric: rule.metric,
        operator: rule.operator,
        threshold: rule.threshold,
    };
    match serde_json::to_value(definition) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("a definition serialises as an object"),
    }
}

/// The rule checked as the API checks a body.
fn checked(rule: Map<String, Value>) -> Result<ValidRule, Error> {
    RuleDefinition::check(&Value::Object(rule)).map_err(Error::Validation)
}

pub async fn run(command: AlertRuleCommand) -> anyhow::Result<()> {
    match command {
        AlertRuleCommand::List { page: paging } => {
            let after = page_cursor(paging.cursor.as_deref())?;
            let page = migrated_store(&paging.db)
                .await?
                .list_alert_rules(after, paging.limit)
                .await?;
            output::page(
                paging.json,
                &page.items,
                page.next.map(Cursor::encode),
                "rules",
                ["ID", "NAME", "KIND", "SEVERITY", "FOR", "ENABLED", "SCOPE"],
                |rule| {
                    [
                        rule.id.to_string(),
                        rule.name.clone(),
                        name_of(rule.kind),
                        name_of(rule.severity),
                        format!("{}s", rule.for_seconds),
                        if rule.enabled { "yes" } else { "no" }.into(),
                        scope_text(rule),
                    ]
                },
            )?;
        }
        AlertRuleCommand::Show {
            id,
            args: ObjectArgs { json, db },
        } => {
            let rule = migrated_store(&db).await?.alert_rule(id).await?;
            print_rule(&rule, json)?;
        }
        AlertRuleCommand::Create {
            name,
            kind,
            fields,
            args: ObjectArgs { json, db },
        } => {
            let mut rule = Map::new();
            rule.insert("name".into(), name.into());
            rule.insert("kind".into(), json!(kind));
            fields.write_over(&mut rule)?;
            let rule = checked(rule)?;
            let created = migrated_store(&db).await?.create_alert_rule(&rule).await?;
            if json {
                output::json(&created)?;
            } else {
                println!(
                    "created alert rule {} ({}) with id {}",
                    created.name,
                    name_of(created.kind),
                    created.id
                );
            }
        }
        AlertRuleCommand::Update {
            id,
            name,
            kind,
            fields,
            all_hosts,
            args: ObjectArgs { json, db },
        } => {
            let store = migrated_store(&db).await?;
            let current = store.alert_rule(id).await?;
            let mut rule = definition_of(&current);
            if let Some(name) = name {
                rule.insert("name".into(), name.into());
            }
            if let Some(kind) = kind.filter(|kind| *kind != current.kind) {
                rule.insert("kind".into(), json!(kind));
                for parameter in PARAMETERS {
                    rule.remove(parameter);
                }
            }
            if all_hosts {
                rule.remove("host_ids");
                rule.remove("host_labels");
            }
            fields.write_over(&mut rule)?;
            let updated = store.replace_alert_rule(id, &checked(rule)?).await?;
            print_rule(&updated, json)?;
        }
        AlertRuleCommand::Delete { id, db } => {
            migrated_store(&db).await?.delete_alert_rule(id).await?;
            println!("deleted alert rule {id} and its alerts");
        }
    }
    Ok(())
}

fn scope_text(rule: &AlertRule) -> String {
    let mut parts = Vec::new();
    if let Some(ids) = &rule.host_ids {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        parts.push(format!("hosts {}", ids.join(",")));
    }
    if let Some(labels) = &rule.host_labels {
        let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(format!("labels {}", pairs.join(",")));
    }
    if parts.is_empty() {
        "all hosts".into()
    } else {
        parts.join("; ")
    }
}

fn print_rule(rule: &AlertRule, json: bool) -> anyhow::Result<()> {
    output::object(json, rule, 14, || {
        [
            ("id", rule.id.to_string()),
            ("name", rule.name.clone()),
            ("kind", name_of(rule.kind)),
            ("scope", scope_text(rule)),
            ("for", format!("{}s", rule.for_seconds)),
            ("severity", name_of(rule.severity)),
            ("summary", rule.summary.clone()),
            ("enabled", rule.enabled.to_string()),
            (
                "ignore exit 0",
                output::or_dash(rule.ignore_exit_code_zero.map(|b| b.to_string())),
            ),
            (
                "restarts",
                output::or_dash(rule.restarts.map(|n| n.to_string())),
            ),
            (
                "window",
                output::or_dash(rule.window_seconds.map(|n| format!("{n}s"))),
            ),
            ("metric", output::or_dash(rule.metric.map(name_of))),
            ("operator", output::or_dash(rule.operator.map(name_of))),
            (
                "threshold",
                output::or_dash(rule.threshold.map(|n| n.to_string())),
            ),
            ("created", output::time(Some(rule.created_at))),
            ("updated", output::time(Some(rule.updated_at))),
        ]
    })
}
