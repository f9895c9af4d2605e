//! What the Alertmanager sender reads and writes: the alerts to send (firing, and resolved
//! within the resolve retention) with their rule, host and container, silences mirrored
//! back from Alertmanager into `alerts.silenced_until`, and the silences it keeps in each
//! Alertmanager for our API's silences (`alertmanager_silences`, sql/V21__silences.sql).

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

/// Silenced until at least `$4`: a longer silence set by other means stays. A silence still
/// running keeps its start; the silence is Alertmanager's from now on (`silenced_via`), so the
/// sender's own copy of an API silence it outlasts is expired.
const MIRROR_SILENCE: &str = "
UPDATE alerts
SET silenced_since = CASE WHEN silenced_until > now() THEN silenced_since ELSE now() END,
    silenced_via = 'alertmanager',
    silenced_until = $4
WHERE state = 'firing' AND rule_id = $1 AND host_id = $2
  AND coalesce(container_id, '') = coalesce($3, '')
  AND (silenced_until IS NULL OR silenced_until < $4)";

/// Open alerts silenced through our API whose silence Alertmanager `$1` does not hold with
/// this end (none recorded, or another end); the recorded silence's id when there is one.
const SILENCES_TO_SET: &str = "
SELECT a.id, a.rule_id, a.host_id, a.container_id, a.silenced_until, s.silence_id
FROM alerts a
LEFT JOIN alertmanager_silences s ON s.alert_id = a.id AND s.alertmanager = $1
WHERE a.state <> 'resolved' AND a.silenced_via = 'api' AND a.silenced_until > now()
  AND s.ends_at IS DISTINCT FROM a.silenced_until
ORDER BY a.id";

/// Silences recorded for Alertmanager `$1` whose alert is no longer silenced through our API
/// (cleared, ended, taken over by Alertmanager's own silence, resolved, or deleted).
const SILENCES_TO_EXPIRE: &str = "
SELECT s.alert_id, s.silence_id, s.ends_at <= now() AS ended
FROM alertmanager_silences s
LEFT JOIN alerts a ON a.id = s.alert_id
WHERE s.alertmanager = $1
  AND NOT coalesce(a.state <> 'resolved' AND a.silenced_via = 'api'
                   AND a.silenced_until > now(), false)
ORDER BY s.alert_id";

const RECORD_SILENCE: &str = "
INSERT INTO alertmanager_silences (alert_id, alertmanager, silence_id, ends_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (alert_id, alertmanager)
DO UPDATE SET silence_id = EXCLUDED.silence_id, ends_at = EXCLUDED.ends_at";

const FORGET_SILENCE: &str = "DELETE FROM alertmanager_silences WHERE alert_id = $1 AND alertmanager = $2 AND silence_id = $3";

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

/// An alert silenced through our API whose silence an Alertmanager must get or move.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceToSet {
    pub alert_id: i64,
    pub subject: AlertSubject,
    /// The silence's end: the alert's `silenced_until`.
    pub until: DateTime<Utc>,
    /// The silence this Alertmanager holds for it already (with another end), if any.
    pub silence_id: Option<String>,
}

/// A silence an Alertmanager holds for an alert no longer silenced through our API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceToExpire {
    pub alert_id: i64,
    pub silence_id: String,
    /// Its end has passed: Alertmanager expired it by itself, only the record is left.
    pub ended: bool,
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

    /// What Alertmanager `alertmanager` (its base URL without credentials) must be told of our
    /// API's silences: silences to create or move, and silences to expire.
    pub async fn silences_to_sync(
        &self,
        alertmanager: &str,
    ) -> Result<(Vec<SilenceToSet>, Vec<SilenceToExpire>), Error> {
        let client = self.client().await?;
        let set = client.prepare_cached(SILENCES_TO_SET).await?;
        let expire = client.prepare_cached(SILENCES_TO_EXPIRE).await?;
        let to_set = client
            .query(&set, &[&alertmanager])
            .await?
            .iter()
            .map(|row| SilenceToSet {
                alert_id: row.get(0),
                subject: AlertSubject {
                    rule_id: row.get(1),
                    host_id: row.get(2),
                    container_id: row.get(3),
                },
                until: row.get(4),
                silence_id: row.get(5),
            })
            .collect();
        let to_expire = client
            .query(&expire, &[&alertmanager])
            .await?
            .iter()
            .map(|row| SilenceToExpire {
                alert_id: row.get(0),
                silence_id: row.get(1),
                ended: row.get(2),
            })
            .collect();
        Ok((to_set, to_expire))
    }

    /// Records that `alertmanager` holds silence `silence_id` for alert `alert_id` until
    /// `ends_at`.
    pub async fn record_alertmanager_silence(
        &self,
        alertmanager: &str,
        alert_id: i64,
        silence_id: &str,
        ends_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(RECORD_SILENCE).await?;
        client
            .execute(
                &statement,
                &[&alert_id, &alertmanager, &silence_id, &ends_at],
            )
            .await?;
        Ok(())
    }

    /// Forgets silence `silence_id` of alert `alert_id` in `alertmanager` (expired there).
    pub async fn forget_alertmanager_silence(
        &self,
        alertmanager: &str,
        alert_id: i64,
        silence_id: &str,
    ) -> Result<(), Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(FORGET_SILENCE).await?;
        client
            .execute(&statement, &[&alert_id, &alertmanager, &silence_id])
            .await?;
        Ok(())
    }
}
