//! Reading the events feed (`events`, sql/V13__events.sql): container lifecycle events the
//! ingest derives and host liveness transitions, in id order.
//!
//! Ids are taken in commit order (the table's insert trigger), so "every matching event after
//! id N" never skips one that commits late: the pages of `GET /api/v1/events`, the live
//! stream's replay and its reads after each wake-up all rest on that.

use chrono::{DateTime, SubsecRound, Utc};
use poem_openapi::{Enum, Object};
use tokio_postgres::Row;

use super::Store;
use crate::error::Error;

/// Channel the events table notifies on every insert (no payload: a wake-up only).
pub const EVENTS_CHANNEL: &str = "nexus_events";

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The host's first contact.
    Online,
    /// The host fell silent past the heartbeat timeout.
    Offline,
    /// The host is back from offline.
    Recovered,
    /// A container appeared (its first snapshot, or back after `removed`); `to_value` is its
    /// state.
    Created,
    /// A container in the host's previous snapshot is absent from this one; `from_value` is its
    /// last state. Its rows stay.
    Removed,
    /// Docker's state changed (`running` → `exited`, …); `exit_code` is the container's as of
    /// the snapshot.
    StateChanged,
    /// The health status changed (`healthy` → `unhealthy`, …).
    HealthChanged,
    /// The restart count rose (`from_value` → `to_value`).
    Restarted,
    /// The kernel's OOM killer ended the container's last run.
    OomKilled,
    /// An alert fired (`alert_id`; `from_value` → `to_value` are its states).
    AlertFiring,
    /// An alert's condition stopped holding.
    AlertResolved,
    /// Someone acknowledged an alert.
    AlertAcknowledged,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::Online,
        EventKind::Offline,
        EventKind::Recovered,
        EventKind::Created,
        EventKind::Removed,
        EventKind::StateChanged,
        EventKind::HealthChanged,
        EventKind::Restarted,
        EventKind::OomKilled,
        EventKind::AlertFiring,
        EventKind::AlertResolved,
        EventKind::AlertAcknowledged,
    ];

    /// The name in the table, the API and the stream's `event:` field.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Online => "online",
            EventKind::Offline => "offline",
            EventKind::Recovered => "recovered",
            EventKind::Created => "created",
            EventKind::Removed => "removed",
            EventKind::StateChanged => "state_changed",
            EventKind::HealthChanged => "health_changed",
            EventKind::Restarted => "restarted",
            EventKind::OomKilled => "oom_killed",
            EventKind::AlertFiring => "alert_firing",
            EventKind::AlertResolved => "alert_resolved",
            EventKind::AlertAcknowledged => "alert_acknowledged",
        }
    }

    pub(crate) fn of_name(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown event kind {name:?}")))
    }
}

/// One event of the feed.
#[derive(Debug, Clone, PartialEq, Object, serde::Serialize)]
pub struct Event {
    /// Fleet-wide, increasing in the order events are written; pass as `after` (or as the
    /// stream's `Last-Event-ID`) to continue after it.
    pub id: i64,
    pub kind: EventKind,
    /// The snapshot's `recorded_at` for container events; when the transition was recorded for
    /// host events.
    pub at: DateTime<Utc>,
    /// The host's id.
    pub host_id: i64,
    /// Docker's id of the container; null for host events.
    #[oai(nullable)]
    pub container_id: Option<String>,
    /// The value before: a state (`state_changed`, `removed`), a health status
    /// (`health_changed`) or a restart count (`restarted`). (Not `from`, a keyword in some
    /// client languages.)
    #[oai(nullable)]
    pub from_value: Option<String>,
    /// The value after, as `from_value` (`created`: the state).
    #[oai(nullable)]
    pub to_value: Option<String>,
    /// The container's exit code as of the event, when the agent sends it.
    #[oai(nullable)]
    pub exit_code: Option<i64>,
    /// The alert an `alert_*` event is about (`GET /api/v1/alerts/{id}`); null otherwise.
    #[oai(nullable)]
    pub alert_id: Option<i64>,
}

/// Which events a reader wants; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub host_id: Option<i64>,
    /// Docker's id.
    pub container_id: Option<String>,
    /// Any of these kinds; all when empty.
    pub kinds: Vec<EventKind>,
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
}

impl EventFilter {
    /// Whether `event` passes, as the query's conditions would decide.
    pub fn matches(&self, event: &Event) -> bool {
        self.host_id.is_none_or(|id| event.host_id == id)
            && self
                .container_id
                .as_deref()
                .is_none_or(|id| event.container_id.as_deref() == Some(id))
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self
                .since
                .is_none_or(|since| event.at >= table_precision(since))
            && self
                .until
                .is_none_or(|until| event.at < table_precision(until))
    }
}

/// `instant` at the table's precision (microseconds), rounded up: an event's `at` (whole
/// microseconds) is at or after `instant` exactly when it is at or after this, so the query and
/// [`EventFilter::matches`] decide alike. (The driver would truncate a finer instant instead,
/// and `since` = an event's `at` plus a nanosecond would pass that event in SQL only.)
fn table_precision(instant: DateTime<Utc>) -> DateTime<Utc> {
    let truncated = instant.trunc_subsecs(6);
    if truncated == instant {
        instant
    } else {
        // Only the largest instant has no later microsecond (RFC 3339 cannot name it).
        truncated
            .checked_add_signed(chrono::Duration::microseconds(1))
            .unwrap_or(truncated)
    }
}

const EVENT_COLUMNS: &str =
    "id, kind, at, host_id, container_id, from_value, to_value, exit_code, alert_id";

impl Store {
    /// Up to `limit` events matching `filter` with an id above `after`, oldest (lowest id)
    /// first.
    pub async fn events_after(
        &self,
        filter: &EventFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Event>, Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(EVENTS_AFTER_SQL).await?;
        events_after(&client, &statement, filter, after, limit).await
    }

    /// The newest event's id (0 when there is none): where a live reader starts.
    pub async fn newest_event_id(&self) -> Result<i64, Error> {
        let client = self.client().await?;
        newest_event_id(&client).await
    }

    /// Up to `limit` events of a host with an id below `before` (all when `None`), newest
    /// first: `GET /api/v1/hosts/{id}/events`.
    pub async fn host_events(
        &self,
        host_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Event>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE host_id = $1 AND ($2::bigint IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3"
            ))
            .await?;
        client
            .query(&statement, &[&host_id, &before, &limit])
            .await?
            .iter()
            .map(event_of)
            .collect()
    }
}

/// The query of [`Store::events_after`]: `$1` the id to continue after, `$2`..`$6` the filter
/// (see [`events_after`]), `$7` the limit.
pub const EVENTS_AFTER_SQL: &str =
    "SELECT id, kind, at, host_id, container_id, from_value, to_value, exit_code, alert_id
FROM events
WHERE id > $1
  AND ($2::bigint IS NULL OR host_id = $2)
  AND ($3::text IS NULL OR container_id = $3)
  AND (cardinality($4::text[]) = 0 OR kind = ANY ($4))
  AND ($5::timestamptz IS NULL OR at >= $5)
  AND ($6::timestamptz IS NULL OR at < $6)
ORDER BY id LIMIT $7";

/// Runs [`EVENTS_AFTER_SQL`], prepared on `client`.
pub async fn events_after(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    filter: &EventFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>, Error> {
    let kinds: Vec<&str> = filter.kinds.iter().map(|kind| kind.name()).collect();
    client
        .query(
            statement,
            &[
                &after,
                &filter.host_id,
                &filter.container_id,
                &kinds,
                &filter.since.map(table_precision),
                &filter.until.map(table_precision),
                &limit,
            ],
        )
        .await?
        .iter()
        .map(event_of)
        .collect()
}

/// [`Store::newest_event_id`] on a given connection.
pub async fn newest_event_id(client: &tokio_postgres::Client) -> Result<i64, Error> {
    let row = client
        .query_one("SELECT COALESCE(max(id), 0) FROM events", &[])
        .await?;
    Ok(row.get(0))
}

pub(crate) fn event_of(row: &Row) -> Result<Event, Error> {
    Ok(Event {
        id: row.get("id"),
        kind: EventKind::of_name(row.get("kind"))?,
        at: row.get("at"),
        host_id: row.get("host_id"),
        container_id: row.get("container_id"),
        from_value: row.get("from_value"),
        to_value: row.get("to_value"),
        exit_code: row.get("exit_code"),
        alert_id: row.get("alert_id"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, host_id: i64, container_id: Option<&str>) -> Event {
        Event {
            id: 1,
            kind,
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            host_id,
            container_id: container_id.map(str::to_owned),
            from_value: None,
            to_value: None,
            exit_code: None,
            alert_id: None,
        }
    }

    #[test]
    fn a_filter_passes_an_event_only_when_every_condition_given_holds() {
        let restart = event(EventKind::Restarted, 7, Some("abc"));
        let at = restart.at;
        let cases = [
            (EventFilter::default(), true),
            (
                EventFilter {
                    host_id: Some(7),
                    ..Default::default()
                },
                true,
            ),
            (
                EventFilter {
                    host_id: Some(8),
                    ..Default::default()
                },
                false,
            ),
            (
                EventFilter {
                    container_id: Some("abc".into()),
                    kinds: vec![EventKind::OomKilled, EventKind::Restarted],
                    ..Default::default()
                },
                true,
            ),
            (
                EventFilter {
                    kinds: vec![EventKind::OomKilled],
                    ..Default::default()
                },
                false,
            ),
            (
                EventFilter {
                    since: Some(at),
                    until: Some(at + chrono::Duration::seconds(1)),
                    ..Default::default()
                },
                true,
            ),
            (
                EventFilter {
                    until: Some(at),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(filter.matches(&restart), expected, "{filter:?}");
        }
        // Finer than the table's microseconds: as the query, which compares whole microseconds.
        let nanosecond = chrono::Duration::nanoseconds(1);
        let finer = [
            (
                EventFilter {
                    since: Some(at + nanosecond),
                    ..Default::default()
                },
                false,
            ),
            (
                EventFilter {
                    since: Some(at - nanosecond),
                    ..Default::default()
                },
                true,
            ),
            (
                EventFilter {
                    until: Some(at + nanosecond),
                    ..Default::default()
                },
                true,
            ),
            (
                EventFilter {
                    until: Some(at - nanosecond),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (filter, expected) in finer {
            assert_eq!(filter.matches(&restart), expected, "{filter:?}");
        }
        let offline = event(EventKind::Offline, 7, None);
        let by_container = EventFilter {
            container_id: Some("abc".into()),
            ..Default::default()
        };
        assert!(!by_container.matches(&offline));
    }

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::of_name(kind.name()).unwrap(), kind);
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.name())
            );
        }
    }
}
