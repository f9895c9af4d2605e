//! Alerts as people see them (`alerts`, sql/V14__alerts.sql): listings of what is open and of
//! the history, one alert, and what people do to one: acknowledge it (an `alert_acknowledged`
//! event in the same transaction) or silence it until a time. The evaluator
//! (`src/alerts/`) opens, fires and resolves them.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use tokio_postgres::Row;

use super::Store;
use super::hosts::Page;
use crate::domain::FieldError;
use crate::domain::alert_rule::{RuleKind, Severity, from_name, name_of};
use crate::domain::host::{Cursor, container_id_filter, page_cursor};
use crate::error::Error;

/// Where an alert is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum, Enum,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds, not yet for the rule's `for_seconds`.
    Pending,
    /// The condition has held for `for_seconds`; notifications go out.
    Firing,
    /// The condition stopped holding: history.
    Resolved,
}

/// What an alert is about: a host, or one of its containers.
#[derive(Debug, Clone, PartialEq, Object, serde::Serialize)]
pub struct AlertSubject {
    pub host_id: i64,
    pub host_name: String,
    /// Docker's id; null when the alert is about the host.
    #[oai(nullable)]
    pub container_id: Option<String>,
    /// The container's name, when known.
    #[oai(nullable)]
    pub container_name: Option<String>,
}

/// One rule's finding about one subject.
#[derive(Debug, Clone, PartialEq, Object, serde::Serialize)]
pub struct Alert {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub kind: RuleKind,
    pub severity: Severity,
    /// The rule's summary.
    pub summary: String,
    pub subject: AlertSubject,
    /// Hex SHA-256 of rule, host and container: the same for every alert of one rule and
    /// subject, so receivers can group its occurrences.
    pub fingerprint: String,
    pub state: AlertState,
    /// The value that made it fire (or go pending): a percent, a restart count, …
    #[oai(nullable)]
    pub value: Option<f64>,
    /// When the condition was first seen to hold.
    pub pending_since: DateTime<Utc>,
    /// When it fired.
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the condition stopped holding.
    #[oai(nullable)]
    pub resolved_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who acknowledged it: through the API, the admin token's name and id
    /// (`ops (admin token 3)`); through the CLI, its `--by`.
    #[oai(nullable)]
    pub acknowledged_by: Option<String>,
    /// Notifications are held back until then; null: not silenced.
    #[oai(nullable)]
    pub silenced_until: Option<DateTime<Utc>>,
}

/// The alert view every query returns.
const ALERT_SELECT: &str = "SELECT a.id, a.rule_id, r.name AS rule_name, r.kind, r.severity, \
         r.summary, a.host_id, h.name AS host_name, a.container_id, c.name AS container_name, \
         a.fingerprint, a.state, a.value, a.pending_since, a.started_at, a.resolved_at, \
         a.acknowledged_at, a.acknowledged_by, a.silenced_until \
     FROM alerts a \
     JOIN alert_rules r ON r.id = a.rule_id \
     JOIN hosts h ON h.id = a.host_id \
     LEFT JOIN containers c ON c.host_id = a.host_id AND c.container_id = a.container_id";

impl From<Row> for Alert {
    fn from(row: Row) -> Self {
        Self {
            id: row.get("id"),
            rule_id: row.get("rule_id"),
            rule_name: row.get("rule_name"),
            kind: from_name(row.get("kind")),
            severity: from_name(row.get("severity")),
            summary: row.get("summary"),
            subject: AlertSubject {
                host_id: row.get("host_id"),
                host_name: row.get("host_name"),
                container_id: row.get("container_id"),
                container_name: row.get("container_name"),
            },
            fingerprint: row.get("fingerprint"),
            state: from_name(row.get("state")),
            value: row.get("value"),
            pending_since: row.get("pending_since"),
            started_at: row.get("started_at"),
            resolved_at: row.get("resolved_at"),
            acknowledged_at: row.get("acknowledged_at"),
            acknowledged_by: row.get("acknowledged_by"),
            silenced_until: row.get("silenced_until"),
        }
    }
}

/// Which alerts to list, and which page (newest first).
#[derive(Debug, Clone)]
pub struct AlertFilter {
    /// Any of these states.
    pub states: Vec<AlertState>,
    pub rule_id: Option<i64>,
    pub host_id: Option<i64>,
    pub container_id: Option<String>,
    /// Continue with alerts older (smaller id) than this position.
    pub before: Option<Cursor>,
    pub limit: u32,
}

/// Why an action on one alert did nothing.
fn refusal(state: Option<AlertState>) -> Error {
    match state {
        None => Error::NotFound("alert"),
        Some(_) => Error::Conflict(
            "alert-resolved",
            "the alert is resolved; only pending and firing alerts can be acknowledged or \
             silenced"
                .into(),
        ),
    }
}

/// One page of alerts, newest first.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct AlertPage {
    /// At most `limit` alerts, newest (largest id) first.
    pub items: Vec<Alert>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// The filter of an alert listing, from the API's query parameters or the CLI's flags (which
/// share their names); each malformed one is named.
pub fn alert_filter(
    states: Vec<AlertState>,
    history: bool,
    rule_id: Option<i64>,
    host_id: Option<i64>,
    container_id: Option<String>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<AlertFilter, Error> {
    let mut errors = Vec::new();
    if history && !states.is_empty() {
        errors.push(FieldError::new(
            "history",
            "give `history` or `state`, not both",
        ));
    }
    if let Some(Err(error)) = container_id
        .as_deref()
        .map(|id| container_id_filter("container_id", id))
    {
        errors.push(error);
    }
    let before = page_cursor(cursor).unwrap_or_else(|error| {
        if let Error::Validation(more) = error {
            errors.extend(more);
        }
        None
    });
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let states = match (history, states.is_empty()) {
        (true, _) => vec![AlertState::Resolved],
        (false, true) => vec![AlertState::Pending, AlertState::Firing],
        (false, false) => states,
    };
    Ok(AlertFilter {
        states,
        rule_id,
        host_id,
        container_id,
        before,
        limit,
    })
}

impl Store {
    pub async fn alert(&self, id: i64) -> Result<Alert, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("{ALERT_SELECT} WHERE a.id = $1"))
            .await?;
        client
            .query_opt(&statement, &[&id])
            .await?
            .map(Alert::from)
            .ok_or(Error::NotFound("alert"))
    }

    /// One page of alerts matching `filter`, newest (largest id) first.
    pub async fn list_alerts(&self, filter: &AlertFilter) -> Result<Page<Alert>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "{ALERT_SELECT} \
                 WHERE a.state = ANY ($1) \
                   AND ($2::bigint IS NULL OR a.rule_id = $2) \
                   AND ($3::bigint IS NULL OR a.host_id = $3) \
                   AND ($4::text IS NULL OR a.container_id = $4) \
                   AND ($5::bigint IS NULL OR a.id < $5) \
                 ORDER BY a.id DESC LIMIT $6"
            ))
            .await?;
        let states: Vec<String> = filter.states.iter().map(name_of).collect();
        let before = filter.before.map(|cursor| cursor.0);
        let limit = i64::from(filter.limit);
        let mut items: Vec<Alert> = client
            .query(
                &statement,
                &[
                    &states,
                    &filter.rule_id,
                    &filter.host_id,
                    &filter.container_id,
                    &before,
                    &(limit + 1),
                ],
            )
            .await?
            .into_iter()
            .map(Alert::from)
            .collect();
        let next = if items.len() as i64 > limit {
            items.truncate(filter.limit as usize);
            items.last().map(|alert| Cursor(alert.id))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Records who acknowledged an open alert and writes its `alert_acknowledged` event, in
    /// one transaction. An acknowledged alert keeps its first acknowledgement (and no second
    /// event is written); a resolved one is a conflict.
    pub async fn acknowledge_alert(&self, id: i64, by: &str) -> Result<Alert, Error> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let acknowledge = transaction
            .prepare_cached(
                "UPDATE alerts SET acknowledged_at = now(), acknowledged_by = $2 \
                 WHERE id = $1 AND state <> 'resolved' AND acknowledged_at IS NULL \
                 RETURNING host_id, container_id, state",
            )
            .await?;
        if let Some(row) = transaction.query_opt(&acknowledge, &[&id, &by]).await? {
            let state: &str = row.get("state");
            let event = transaction
                .prepare_cached(
                    "INSERT INTO events (kind, host_id, container_id, from_value, to_value, \
                                         alert_id) \
                     VALUES ('alert_acknowledged', $1, $2, $3, $3, $4)",
                )
                .await?;
            let container_id: Option<&str> = row.get("container_id");
            let host_id: i64 = row.get("host_id");
            transaction
                .execute(&event, &[&host_id, &container_id, &state, &id])
                .await?;
        } else {
            match self.open_state(&transaction, id).await? {
                Some(AlertState::Pending | AlertState::Firing) => {} // acknowledged already
                other => return Err(refusal(other)),
            }
        }
        transaction.commit().await?;
        self.alert(id).await
    }

    /// Holds back an open alert's notifications until `until` (webhooks skip its events; the
    /// Alertmanager sender copies the silence there); `None` or a time already past clears the
    /// silence. A resolved alert is a conflict.
    pub async fn silence_alert(
        &self,
        id: i64,
        until: Option<DateTime<Utc>>,
    ) -> Result<Alert, Error> {
        let client = self.client().await?;
        // A silence still running keeps its start when moved; a new one starts now. Webhooks
        // hold back the events between the two (docs/alerts.md, "Silence").
        let statement = client
            .prepare_cached(
                "UPDATE alerts \
                 SET silenced_since = CASE WHEN $2::timestamptz > now() THEN \
                         CASE WHEN silenced_until > now() THEN silenced_since ELSE now() END END, \
                     silenced_via = CASE WHEN $2::timestamptz > now() THEN 'api' END, \
                     silenced_until = CASE WHEN $2::timestamptz > now() THEN $2 END \
                 WHERE id = $1 AND state <> 'resolved' RETURNING id",
            )
            .await?;
        if client
            .query_opt(&statement, &[&id, &until])
            .await?
            .is_none()
        {
            return Err(refusal(self.open_state(&client, id).await?));
        }
        self.alert(id).await
    }

    /// The state of alert `id` (`None`: no such alert).
    async fn open_state(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        id: i64,
    ) -> Result<Option<AlertState>, Error> {
        let statement = client
            .prepare_cached("SELECT state FROM alerts WHERE id = $1")
            .await?;
        Ok(client
            .query_opt(&statement, &[&id])
            .await?
            .map(|row| from_name(row.get("state"))))
    }
}
