//! Alert rules (`alert_rules`, sql/V14__alerts.sql): listing, creating, replacing and deleting
//! the rules the evaluator reads.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::Store;
use super::hosts::Page;
use crate::domain::alert_rule::{
    Metric, Operator, RuleKind, Severity, ValidRule, from_name, name_of,
};
use crate::domain::host::{Cursor, HostLabels};
use crate::error::Error;

const RULE_COLUMNS: &str = "id, name, kind, host_ids, host_labels, for_seconds, severity, \
     summary, enabled, ignore_exit_code_zero, restarts, window_seconds, metric, operator, \
     threshold, created_at, updated_at";

/// The columns a definition writes, in the order of [`definition_params`] (`$1`..`$14`).
const WRITTEN_COLUMNS: &str = "name, kind, host_ids, host_labels, for_seconds, severity, \
     summary, enabled, ignore_exit_code_zero, restarts, window_seconds, metric, operator, \
     threshold";

/// An alert rule, as stored (the admin API's and the CLI's JSON shape).
#[derive(Debug, Clone, serde::Serialize, poem_openapi::Object)]
pub struct AlertRule {
    /// Identifier used in URLs and as alerts' `rule_id`.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// What the rule watches.
    pub kind: RuleKind,
    /// Only these hosts; null: not restricted by id.
    #[oai(nullable)]
    pub host_ids: Option<Vec<i64>>,
    /// Only hosts whose labels contain these; null: not restricted by labels.
    #[oai(nullable)]
    pub host_labels: Option<HostLabels>,
    /// Seconds the condition must hold before the alert fires.
    pub for_seconds: u32,
    pub severity: Severity,
    pub summary: String,
    /// Whether the rule is evaluated.
    pub enabled: bool,
    /// `container_not_running`: exits with code 0 do not count; null for other kinds.
    #[oai(nullable)]
    pub ignore_exit_code_zero: Option<bool>,
    /// `container_restarting`: restarts within `window_seconds` that fire; null otherwise.
    #[oai(nullable)]
    pub restarts: Option<u32>,
    /// `container_restarting`: the window, in seconds; null otherwise.
    #[oai(nullable)]
    pub window_seconds: Option<u32>,
    /// `metric_threshold`: what is compared; null otherwise.
    #[oai(nullable)]
    pub metric: Option<Metric>,
    /// `metric_threshold`: how it is compared; null otherwise.
    #[oai(nullable)]
    pub operator: Option<Operator>,
    /// `metric_threshold`: the value compared with; null otherwise.
    #[oai(nullable)]
    pub threshold: Option<f64>,
    pub created_at: DateTime<Utc>,
    /// When the rule last changed.
    pub updated_at: DateTime<Utc>,
}

fn non_negative(value: Option<i32>) -> Option<u32> {
    value.map(|n| u32::try_from(n).unwrap_or_default())
}

impl From<Row> for AlertRule {
    fn from(row: Row) -> Self {
        let kind: RuleKind = from_name(row.get("kind"));
        Self {
            id: row.get("id"),
            name: row.get("name"),
            kind,
            host_ids: row.get("host_ids"),
            host_labels: row
                .get::<_, Option<Json<HostLabels>>>("host_labels")
                .map(|labels| labels.0),
            for_seconds: non_negative(row.get("for_seconds")).unwrap_or_default(),
            severity: from_name(row.get("severity")),
            summary: row.get("summary"),
            enabled: row.get("enabled"),
            // The column is NOT NULL for every kind; it means something for one.
            ignore_exit_code_zero: (kind == RuleKind::ContainerNotRunning)
                .then(|| row.get("ignore_exit_code_zero")),
            restarts: non_negative(row.get("restarts")),
            window_seconds: non_negative(row.get("window_seconds")),
            metric: row.get::<_, Option<&str>>("metric").map(from_name),
            operator: row
                .get::<_, Option<&str>>("operator")
                .map(Operator::of_symbol),
            threshold: row.get("threshold"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// The conflict of a name another rule has.
fn name_taken(name: &str) -> Error {
    Error::Conflict(
        "rule-name-taken",
        format!("an alert rule named `{name}` already exists"),
    )
}

/// Whether `error` is a unique violation (the rule name's).
fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// Runs `statement` with a definition's values, answering a taken name as a conflict.
async fn write_rule(
    client: &deadpool_postgres::Client,
    statement: &tokio_postgres::Statement,
    rule: &ValidRule,
    id: Option<i64>,
) -> Result<Option<AlertRule>, Error> {
    let rule = rule.definition();
    let i32_of = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let for_seconds = i32_of(rule.for_seconds).unwrap_or(0);
    let ignore_exit_code_zero = rule.ignore_exit_code_zero.unwrap_or(false);
    let (restarts, window_seconds) = (i32_of(rule.restarts), i32_of(rule.window_seconds));
    let labels = rule.host_labels.as_ref().map(Json);
    let kind = name_of(rule.kind);
    let severity = name_of(rule.severity.unwrap_or_default());
    let summary = rule.summary.as_deref().unwrap_or_default();
    let enabled = rule.enabled.unwrap_or(true);
    let metric = rule.metric.map(name_of);
    let operator = rule.operator.map(Operator::symbol);
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
        &rule.name,
        &kind,
        &rule.host_ids,
        &labels,
        &for_seconds,
        &severity,
        &summary,
        &enabled,
        &ignore_exit_code_zero,
        &restarts,
        &window_seconds,
        &metric,
        &operator,
        &rule.threshold,
    ];
    if let Some(id) = &id {
        params.push(id);
    }
    match client.query_opt(statement, &params).await {
        Ok(row) => Ok(row.map(AlertRule::from)),
        Err(error) if is_unique_violation(&error) => Err(name_taken(&rule.name)),
        Err(error) => Err(error.into()),
    }
}

/// One page of rules, ordered by id.
#[derive(Debug, Clone, poem_openapi::Object, serde::Serialize)]
pub struct AlertRulePage {
    /// At most `limit` rules, by ascending id.
    pub items: Vec<AlertRule>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

impl Store {
    /// Creates a rule; a name another rule has is a conflict.
    pub async fn create_alert_rule(&self, rule: &ValidRule) -> Result<AlertRule, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO alert_rules ({WRITTEN_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 RETURNING {RULE_COLUMNS}"
            ))
            .await?;
        write_rule(&client, &statement, rule, None)
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("INSERT returned no row")))
    }

    pub async fn alert_rule(&self, id: i64) -> Result<AlertRule, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1"
            ))
            .await?;
        client
            .query_opt(&statement, &[&id])
            .await?
            .map(AlertRule::from)
            .ok_or(Error::NotFound("alert rule"))
    }

    /// One page of rules ordered by id, after `after`.
    pub async fn list_alert_rules(
        &self,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<AlertRule>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .await?;
        let limit = i64::from(limit);
        let after = after.map_or(0, |cursor| cursor.0);
        let mut items: Vec<AlertRule> = client
            .query(&statement, &[&after, &(limit + 1)])
            .await?
            .into_iter()
            .map(AlertRule::from)
            .collect();
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|rule| Cursor(rule.id))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Replaces every field of a rule (its alerts stay); a name another rule has is a
    /// conflict.
    pub async fn replace_alert_rule(&self, id: i64, rule: &ValidRule) -> Result<AlertRule, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE alert_rules SET ({WRITTEN_COLUMNS}, updated_at) = \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now()) \
                 WHERE id = $15 RETURNING {RULE_COLUMNS}"
            ))
            .await?;
        write_rule(&client, &statement, rule, Some(id))
            .await?
            .ok_or(Error::NotFound("alert rule"))
    }

    /// Deletes a rule and, with it, its alerts (their events stay in the feed).
    pub async fn delete_alert_rule(&self, id: i64) -> Result<(), Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM alert_rules WHERE id = $1")
            .await?;
        match client.execute(&statement, &[&id]).await? {
            0 => Err(Error::NotFound("alert rule")),
            _ => Ok(()),
        }
    }
}
