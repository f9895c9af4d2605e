//! What the Alertmanager sender reads and writes: the alerts to send (firing, and resolved
//! within the resolve retention) with their rule, host and container, and silences mirrored
//! back from Alertmanager into `alerts.silenced_until`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Store;
use crate::error::Error;

/// Firing alerts, and resolved ones that had fired; each half through its partial index
/// (alerts_state_idx, alerts_resolved_at_idx).
const ALERTS_TO_SEND: &str = "
WITH chosen AS (
    SELECT * FROM alerts WHERE state = 'firing'
    UNION ALL
    SELECT * FROM alerts
    WHERE state = 'resolved' AND resolved_at > now() - make_interval(secs => $1)
)
SELECT a.id, a.rule_id, r.name, r.severity, r.summary, a.host_id, h.name, h.labels,
       a.container_id, c.name, a.value, a.started_at, a.resolved_at
FROM chosen a
JOIN alert_rules r ON r.id = a.rule_id
JOIN hosts h ON h.id = a.host_id
LEFT JOIN containers c ON c.host_id = a.host_id AND c.container_id = a.container_id
-- Resolved while pending: Alertmanager never heard of it.
WHERE a.started_at IS NOT NULL
ORDER BY a.id";

/// Silenced until at least `$4`: a longer silence set by other means stays.
const MIRROR_SILENCE: &str = "
UPDATE alerts SET silenced_until = $4
WHERE state = 'firing' AND rule_id = $1 AND host_id = $2
  AND coalesce(container_id, '') = coalesce($3, '')
  AND (silenced_until IS NULL OR silenced_until < $4)";

/// An alert as Alertmanager is told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertToSend {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub severity: String,
    pub summary: String,
    pub host_id: i64,
    pub host_name: String,
    pub host_labels: serde_json::Value,
    /// Docker's id, when the alert is about a container.
    pub container_id: Option<String>,
    /// Unknown when the container's row is gone.
    pub container_name: Option<String>,
    pub value: Option<f64>,
    pub started_at: DateTime<Utc>,
    /// Set once resolved.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Which alert a silence in Alertmanager covers: its rule and subject (the labels we sent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertSubject {
    pub rule_id: i64,
    pub host_id: i64,
    pub container_id: Option<String>,
}

impl Store {
    /// Firing alerts, and those resolved within `resolve_retention`, oldest first.
    pub async fn alerts_to_send(
        &self,
        resolve_retention: Duration,
    ) -> Result<Vec<AlertToSend>, Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(ALERTS_TO_SEND).await?;
        let rows = client
            .query(&statement, &[&resolve_retention.as_secs_f64()])
            .await?;
        Ok(rows
            .iter()
            .map(|row| AlertToSend {
                id: row.get(0),
                rule_id: row.get(1),
                rule_name: row.get(2),
                severity: row.get(3),
                summary: row.get(4),
                host_id: row.get(5),
                host_name: row.get(6),
                host_labels: row.get(7),
                container_id: row.get(8),
                container_name: row.get(9),
                value: row.get(10),
                started_at: row.get(11),
                resolved_at: row.get(12),
            })
            .collect())
    }

    /// Marks the firing alert of `subject` silenced until at least `until`; true if it changed.
    pub async fn mirror_silence(
        &self,
        subject: &AlertSubject,
        until: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(MIRROR_SILENCE).await?;
        let changed = client
            .execute(
                &statement,
                &[
                    &subject.rule_id,
                    &subject.host_id,
                    &subject.container_id,
                    &until,
                ],
            )
            .await?;
        Ok(changed > 0)
    }
}
