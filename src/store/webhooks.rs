//! Webhooks (sql/V15__webhooks.sql): endpoints, and the outbox of their deliveries.
//!
//! - The fan-out ([`Store::fan_out_webhooks`]) reads events after a stored cursor and inserts
//!   one delivery per matching endpoint and event, advancing the cursor in the same
//!   transaction; the cursor row's lock lets one process at a time do it, and `UNIQUE
//!   (endpoint_id, event_id)` keeps a delivery from being doubled whatever happens.
//! - Workers claim due deliveries ([`Store::claim_webhook_deliveries`]) with `FOR UPDATE SKIP
//!   LOCKED` and a lease (`locked_until`), post them with no transaction open, then record the
//!   outcome ([`Store::record_webhook_attempt`]). A worker that dies leaves its rows to be
//!   claimed again when their lease passes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use tokio_postgres::Row;

use super::Store;
use super::events::{Event, EventKind};
use crate::domain::alert_rule::{Severity, from_name};
use crate::domain::webhook::message_id;
use crate::error::Error;

/// How a webhook's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Our JSON (`WebhookEvent` in the document's `x-webhooks`): `type`, `timestamp`, `data`.
    Json,
    /// Slack-compatible: `{"text": "…"}`, one human-readable line (Slack's incoming webhooks,
    /// Mattermost, Rocket.Chat, Discord's `/slack` endpoint).
    Slack,
}

impl WebhookFormat {
    fn name(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
        }
    }

    fn of_name(name: &str) -> Self {
        if name == "slack" {
            WebhookFormat::Slack
        } else {
            WebhookFormat::Json
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt (at `next_attempt_at`).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt of the retry schedule failed; redeliver it to try again.
    Failed,
}

impl DeliveryState {
    fn name(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    fn of_name(name: &str) -> Self {
        match name {
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => DeliveryState::Pending,
        }
    }
}

/// A webhook endpoint (its secret is never shown after creation or rotation).
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Webhook {
    /// The endpoint's id, used in its URLs.
    pub id: i64,
    /// Where deliveries are posted (`http` or `https`).
    pub url: String,
    /// The event kinds delivered; empty: every kind, including kinds added later.
    pub event_kinds: Vec<EventKind>,
    /// How the body is written.
    pub format: WebhookFormat,
    /// Whether deliveries are made. While disabled, new events are not queued for it and
    /// queued ones wait.
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const WEBHOOK_COLUMNS: &str = "id, url, event_kinds, format, enabled, created_at, updated_at";

fn webhook_of(row: &Row) -> Result<Webhook, Error> {
    Ok(Webhook {
        id: row.get("id"),
        url: row.get("url"),
        event_kinds: row
            .get::<_, Vec<String>>("event_kinds")
            .iter()
            .map(|name| EventKind::of_name(name))
            .collect::<Result<_, _>>()?,
        format: WebhookFormat::of_name(row.get("format")),
        enabled: row.get("enabled"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// One message to one endpoint.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct WebhookDelivery {
    /// The delivery's id, used in its URLs.
    pub id: i64,
    /// The `webhook-id` header of every attempt (`msg_<id>`), for receivers to deduplicate.
    pub webhook_id: String,
    /// The event delivered (`GET /api/v1/events`).
    pub event_id: i64,
    pub event_kind: EventKind,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: i32,
    /// When the next attempt is due; null unless pending.
    #[oai(nullable)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status of the last attempt; null if it gave none (no attempt yet,
    /// refused, timed out).
    #[oai(nullable)]
    pub last_status_code: Option<i32>,
    /// What went wrong in the last attempt; null after a success.
    #[oai(nullable)]
    pub last_error: Option<String>,
    #[oai(nullable)]
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the event was queued for this endpoint.
    pub created_at: DateTime<Utc>,
}

const DELIVERY_COLUMNS: &str = "id, event_id, event_kind, state, attempts, next_attempt_at, \
     last_attempt_at, last_status_code, last_error, delivered_at, created_at";

fn delivery_of(row: &Row) -> Result<WebhookDelivery, Error> {
    let state = DeliveryState::of_name(row.get("state"));
    Ok(WebhookDelivery {
        id: row.get("id"),
        webhook_id: message_id(row.get("id")),
        event_id: row.get("event_id"),
        event_kind: EventKind::of_name(row.get("event_kind"))?,
        state,
        attempts: row.get("attempts"),
        next_attempt_at: (state == DeliveryState::Pending).then(|| row.get("next_attempt_at")),
        last_attempt_at: row.get("last_attempt_at"),
        last_status_code: row.get("last_status_code"),
        last_error: row.get("last_error"),
        delivered_at: row.get("delivered_at"),
        created_at: row.get("created_at"),
    })
}

/// An endpoint's settings, as created or changed; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub event_kinds: Option<Vec<EventKind>>,
    pub format: Option<WebhookFormat>,
    pub enabled: Option<bool>,
}

fn kind_names(kinds: &Option<Vec<EventKind>>) -> Option<Vec<&'static str>> {
    kinds
        .as_ref()
        .map(|kinds| kinds.iter().map(|kind| kind.name()).collect())
}

/// An event as the fan-out renders it: the feed's event and the names a human reads.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub event: Event,
    pub host_name: Option<String>,
    pub container_name: Option<String>,
    /// An `alert_*` event's alert, while it exists.
    pub alert: Option<AlertFacts>,
}

/// What an `alert_*` event's webhook says of its alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFacts {
    pub rule_name: String,
    pub severity: Severity,
    /// The rule's summary (may be empty).
    pub summary: String,
    /// The value that made it fire (the newest, as `GET /api/v1/alerts/{id}` shows it).
    pub value: Option<f64>,
}

/// A claimed delivery, ready to post. Not `Debug`: it holds the endpoint's secret.
#[derive(Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub url: String,
    pub secret: String,
    pub body: String,
    /// Attempts including this one.
    pub attempts: i32,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered { status: u16 },
    /// Anything else; `status` when the receiver answered at all. `retry_in`: `None` once the
    /// schedule is exhausted.
    Failed {
        status: Option<u16>,
        error: String,
        retry_in: Option<Duration>,
    },
}

/// A new signing secret, made by the database: `whsec_` + base64 of 32 bytes from two random
/// UUIDs (`gen_random_uuid`, PostgreSQL's strong random source: 244 random bits). Made there
/// so that it is never a statement's parameter, which the database driver logs at debug level;
/// it leaves the database only in query results.
const NEW_SECRET: &str = "'whsec_' || encode(decode(replace(gen_random_uuid()::text \
     || gen_random_uuid()::text, '-', ''), 'hex'), 'base64')";

/// Moves the fan-out's cursor to `$1` (an endpoint's `after_event_id`) unless an enabled
/// endpoint other than `$2` exists: with none, the fan-out reads no events (nothing would
/// match), and the one just created or enabled wants none up to `$1`. Without it the fan-out
/// would first page through every event written while there was no endpoint.
const FAST_FORWARD: &str = "UPDATE webhook_fanout SET last_event_id = GREATEST(last_event_id, $1) \
     WHERE NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled AND id <> $2)";

/// Runs [`FAST_FORWARD`] for the endpoint `row` (created or updated, `RETURNING` its id and
/// `after_event_id`) just enabled.
async fn fast_forward(
    transaction: &deadpool_postgres::Transaction<'_>,
    row: &Row,
) -> Result<(), Error> {
    let statement = transaction.prepare_cached(FAST_FORWARD).await?;
    let (after, id): (i64, i64) = (row.get("after_event_id"), row.get("id"));
    transaction.execute(&statement, &[&after, &id]).await?;
    Ok(())
}

/// Waits for a fan-out in progress and keeps the next from starting until the transaction
/// ends: an endpoint created or enabled meanwhile would be missing from the endpoints that
/// fan-out read, for events it reads after the endpoint's `after_event_id`.
const HOLD_FAN_OUT: &str = "SELECT 1 FROM webhook_fanout WHERE singleton FOR UPDATE";

/// Deliveries per page of an endpoint's listing, at most.
pub const MAX_DELIVERY_PAGE: i64 = 200;

impl Store {
    /// Creates an endpoint with a fresh secret; it receives events written from now on.
    pub async fn create_webhook(
        &self,
        url: &str,
        event_kinds: &[EventKind],
        format: WebhookFormat,
        enabled: bool,
    ) -> Result<(Webhook, String), Error> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        if enabled {
            transaction.execute(HOLD_FAN_OUT, &[]).await?;
        }
        let kinds: Vec<&str> = event_kinds.iter().map(|kind| kind.name()).collect();
        let statement = transaction
            .prepare_cached(&format!(
                "INSERT INTO webhook_endpoints (url, event_kinds, format, enabled, secret, after_event_id) \
                 VALUES ($1, $2, $3, $4, {NEW_SECRET}, (SELECT COALESCE(max(id), 0) FROM events)) \
                 RETURNING {WEBHOOK_COLUMNS}, secret, after_event_id"
            ))
            .await?;
        let row = transaction
            .query_one(&statement, &[&url, &kinds, &format.name(), &enabled])
            .await?;
        let webhook = webhook_of(&row)?;
        if enabled {
            fast_forward(&transaction, &row).await?;
        }
        transaction.commit().await?;
        Ok((webhook, row.get("secret")))
    }

    /// Every endpoint, by id.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints ORDER BY id"
            ))
            .await?;
        client
            .query(&statement, &[])
            .await?
            .iter()
            .map(webhook_of)
            .collect()
    }

    pub async fn webhook(&self, id: i64) -> Result<Webhook, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE id = $1"
            ))
            .await?;
        let row = client.query_opt(&statement, &[&id]).await?;
        webhook_of(&row.ok_or(Error::NotFound("webhook"))?)
    }

    pub async fn update_webhook(
        &self,
        id: i64,
        changes: &WebhookChanges,
    ) -> Result<Webhook, Error> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        if changes.enabled == Some(true) {
            transaction.execute(HOLD_FAN_OUT, &[]).await?;
        }
        // Enabling a disabled endpoint starts it at the newest event, as creating one does:
        // events written while it was disabled are not delivered to it.
        let statement = transaction
            .prepare_cached(&format!(
                "WITH before AS (SELECT enabled AS was_enabled FROM webhook_endpoints WHERE id = $1 FOR UPDATE) \
                 UPDATE webhook_endpoints SET url = COALESCE($2, url), \
                 event_kinds = COALESCE($3, event_kinds), format = COALESCE($4, format), \
                 enabled = COALESCE($5, enabled), updated_at = now(), \
                 after_event_id = CASE WHEN $5 AND NOT was_enabled \
                     THEN (SELECT COALESCE(max(id), 0) FROM events) ELSE after_event_id END \
                 FROM before WHERE id = $1 \
                 RETURNING {WEBHOOK_COLUMNS}, after_event_id, NOT was_enabled AND enabled AS enabled_now"
            ))
            .await?;
        let row = transaction
            .query_opt(
                &statement,
                &[
                    &id,
                    &changes.url,
                    &kind_names(&changes.event_kinds),
                    &changes.format.map(WebhookFormat::name),
                    &changes.enabled,
                ],
            )
            .await?
            .ok_or(Error::NotFound("webhook"))?;
        let webhook = webhook_of(&row)?;
        if row.get::<_, bool>("enabled_now") {
            fast_forward(&transaction, &row).await?;
        }
        transaction.commit().await?;
        Ok(webhook)
    }

    /// Disables an endpoint (its receiver answered 410 Gone).
    pub async fn disable_webhook(&self, id: i64) -> Result<(), Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE webhook_endpoints SET enabled = false, updated_at = now() \
                 WHERE id = $1 AND enabled",
            )
            .await?;
        client.execute(&statement, &[&id]).await?;
        Ok(())
    }

    /// Deletes an endpoint with its deliveries (pending ones are never sent).
    pub async fn delete_webhook(&self, id: i64) -> Result<(), Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM webhook_endpoints WHERE id = $1")
            .await?;
        match client.execute(&statement, &[&id]).await? {
            0 => Err(Error::NotFound("webhook")),
            _ => Ok(()),
        }
    }

    /// Replaces an endpoint's secret; attempts from now on are signed with the new one.
    pub async fn rotate_webhook_secret(&self, id: i64) -> Result<(Webhook, String), Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE webhook_endpoints SET secret = {NEW_SECRET}, updated_at = now() \
                 WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}, secret"
            ))
            .await?;
        let row = client
            .query_opt(&statement, &[&id])
            .await?
            .ok_or(Error::NotFound("webhook"))?;
        Ok((webhook_of(&row)?, row.get("secret")))
    }

    /// Up to `limit` deliveries of an endpoint with an id below `before`, newest first,
    /// optionally only those in `state`.
    pub async fn webhook_deliveries(
        &self,
        endpoint_id: i64,
        state: Option<DeliveryState>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>, Error> {
        let client = self.client().await?;
        let exists = client
            .prepare_cached("SELECT 1 FROM webhook_endpoints WHERE id = $1")
            .await?;
        if client.query_opt(&exists, &[&endpoint_id]).await?.is_none() {
            return Err(Error::NotFound("webhook"));
        }
        let statement = client
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                 WHERE endpoint_id = $1 AND ($2::text IS NULL OR state = $2) \
                   AND ($3::bigint IS NULL OR id < $3) \
                 ORDER BY id DESC LIMIT $4"
            ))
            .await?;
        client
            .query(
                &statement,
                &[
                    &endpoint_id,
                    &state.map(DeliveryState::name),
                    &before,
                    &limit.clamp(1, MAX_DELIVERY_PAGE),
                ],
            )
            .await?
            .iter()
            .map(delivery_of)
            .collect()
    }

    /// Puts a failed or delivered delivery back to pending, due now, with a fresh retry
    /// schedule and the same `webhook-id`; a pending one is a conflict.
    pub async fn redeliver_webhook(
        &self,
        endpoint_id: i64,
        delivery_id: i64,
    ) -> Result<WebhookDelivery, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
                 next_attempt_at = now(), locked_until = NULL, locked_by = NULL \
                 WHERE id = $2 AND endpoint_id = $1 AND state <> 'pending' \
                 RETURNING {DELIVERY_COLUMNS}"
            ))
            .await?;
        if let Some(row) = client
            .query_opt(&statement, &[&endpoint_id, &delivery_id])
            .await?
        {
            return delivery_of(&row);
        }
        let exists = client
            .prepare_cached("SELECT 1 FROM webhook_deliveries WHERE id = $2 AND endpoint_id = $1")
            .await?;
        Err(
            match client
                .query_opt(&exists, &[&endpoint_id, &delivery_id])
                .await?
            {
                Some(_) => Error::Conflict(
                    "delivery-pending",
                    format!("delivery {delivery_id} is pending already"),
                ),
                None => Error::NotFound("delivery"),
            },
        )
    }

    /// One fan-out step: the events after the cursor (up to `page`) become deliveries to the
    /// enabled endpoints they match, rendered by `render`, and the cursor moves past them, in
    /// one transaction. `None` when another process is fanning out; else how many events were
    /// read (a full page: call again).
    pub async fn fan_out_webhooks(
        &self,
        page: i64,
        render: impl Fn(&FeedEvent, WebhookFormat) -> String,
    ) -> Result<Option<usize>, Error> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let cursor = transaction
            .prepare_cached(
                "SELECT last_event_id FROM webhook_fanout WHERE singleton FOR UPDATE SKIP LOCKED",
            )
            .await?;
        let Some(row) = transaction.query_opt(&cursor, &[]).await? else {
            return Ok(None);
        };
        let after: i64 = row.get(0);
        let endpoints = transaction
            .prepare_cached(
                "SELECT id, event_kinds, format, after_event_id FROM webhook_endpoints WHERE enabled",
            )
            .await?;
        let endpoints: Vec<(i64, Vec<String>, WebhookFormat, i64)> = transaction
            .query(&endpoints, &[])
            .await?
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    row.get(1),
                    WebhookFormat::of_name(row.get(2)),
                    row.get(3),
                )
            })
            .collect();
        let advance = transaction
            .prepare_cached("UPDATE webhook_fanout SET last_event_id = $1 WHERE singleton")
            .await?;
        if endpoints.is_empty() {
            // Nothing reads the events: the cursor is moved past them when an endpoint is
            // created or enabled ([`FAST_FORWARD`]), so a server without webhooks costs nothing.
            transaction.commit().await?;
            return Ok(Some(0));
        }
        // An alert's event is `silenced` when the alert's silence had begun and not yet ended
        // at the event's time: it is skipped, never queued for later (docs/alerts.md, "Silence").
        let read = transaction
            .prepare_cached(
                "SELECT e.id, e.kind, e.at, e.host_id, e.container_id, e.from_value, e.to_value, \
                        e.exit_code, e.alert_id, h.name AS host_name, c.name AS container_name, \
                        r.name AS rule_name, r.severity, r.summary, a.value, \
                        coalesce(e.kind IN ('alert_firing', 'alert_resolved', 'alert_acknowledged') \
                                 AND a.silenced_since <= e.at AND e.at < a.silenced_until, \
                                 false) AS silenced \
                 FROM events e \
                 LEFT JOIN hosts h ON h.id = e.host_id \
                 LEFT JOIN containers c ON c.host_id = e.host_id AND c.container_id = e.container_id \
                 LEFT JOIN alerts a ON a.id = e.alert_id \
                 LEFT JOIN alert_rules r ON r.id = a.rule_id \
                 WHERE e.id > $1 ORDER BY e.id LIMIT $2",
            )
            .await?;
        let rows = transaction.query(&read, &[&after, &page]).await?;
        let Some(last) = rows.last().map(|row| row.get::<_, i64>("id")) else {
            transaction.commit().await?;
            return Ok(Some(0));
        };
        let read_count = rows.len();
        let events = rows
            .iter()
            .filter(|row| !row.get::<_, bool>("silenced"))
            .map(|row| {
                Ok(FeedEvent {
                    event: super::events::event_of(row)?,
                    host_name: row.get("host_name"),
                    container_name: row.get("container_name"),
                    alert: row
                        .get::<_, Option<String>>("rule_name")
                        .map(|rule_name| AlertFacts {
                            rule_name,
                            severity: from_name(row.get("severity")),
                            summary: row.get("summary"),
                            value: row.get("value"),
                        }),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if events.len() < read_count {
            tracing::debug!(
                skipped = read_count - events.len(),
                "events of silenced alerts not queued for webhooks"
            );
        }
        let (mut endpoint_ids, mut event_ids, mut kinds, mut bodies) =
            (vec![], vec![], vec![], vec![]);
        for feed in &events {
            let kind = feed.event.kind.name();
            for (id, wanted, format, after_event_id) in &endpoints {
                let subscribed = wanted.is_empty() || wanted.iter().any(|w| w == kind);
                if subscribed && feed.event.id > *after_event_id {
                    endpoint_ids.push(*id);
                    event_ids.push(feed.event.id);
                    kinds.push(kind);
                    bodies.push(render(feed, *format));
                }
            }
        }
        if !endpoint_ids.is_empty() {
            let insert = transaction
                .prepare_cached(
                    "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_kind, body) \
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) \
                     ON CONFLICT (endpoint_id, event_id) DO NOTHING",
                )
                .await?;
            transaction
                .execute(&insert, &[&endpoint_ids, &event_ids, &kinds, &bodies])
                .await?;
        }
        transaction.execute(&advance, &[&last]).await?;
        transaction.commit().await?;
        Ok(Some(read_count))
    }

    /// Claims up to `limit` due deliveries for `holder` until `lease` from now: at most one per
    /// endpoint, none of the endpoints in `busy` (this process's deliveries in flight), only of
    /// enabled endpoints. Rows another worker holds are skipped, never waited for.
    pub async fn claim_webhook_deliveries(
        &self,
        holder: uuid::Uuid,
        lease: Duration,
        limit: i64,
        busy: &[i64],
    ) -> Result<Vec<ClaimedDelivery>, Error> {
        let client = self.client().await?;
        // The due conditions are repeated in the locking query: a row another worker claimed
        // since this statement's snapshot is rechecked on its newest version and skipped.
        let statement = client
            .prepare_cached(
                "WITH due AS ( \
                     SELECT d.id FROM webhook_endpoints w \
                     CROSS JOIN LATERAL ( \
                         SELECT d.id FROM webhook_deliveries d \
                         WHERE d.endpoint_id = w.id AND d.state = 'pending' \
                           AND d.next_attempt_at <= now() \
                           AND (d.locked_until IS NULL OR d.locked_until < now()) \
                         ORDER BY d.next_attempt_at, d.id \
                         LIMIT 1 \
                     ) d \
                     WHERE w.enabled AND w.id <> ALL ($4::bigint[]) \
                     LIMIT $3 \
                 ), claimed AS ( \
                     SELECT id FROM webhook_deliveries \
                     WHERE id IN (SELECT id FROM due) AND state = 'pending' \
                       AND next_attempt_at <= now() \
                       AND (locked_until IS NULL OR locked_until < now()) \
                     FOR UPDATE SKIP LOCKED \
                 ) \
                 UPDATE webhook_deliveries d \
                 SET locked_until = now() + $2::bigint * interval '1 millisecond', locked_by = $1, attempts = attempts + 1, \
                     last_attempt_at = now() \
                 FROM claimed, webhook_endpoints w \
                 WHERE d.id = claimed.id AND w.id = d.endpoint_id \
                 RETURNING d.id, d.endpoint_id, w.url, w.secret, d.body, d.attempts",
            )
            .await?;
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        Ok(client
            .query(&statement, &[&holder.to_string(), &lease, &limit, &busy])
            .await?
            .iter()
            .map(|row| ClaimedDelivery {
                id: row.get(0),
                endpoint_id: row.get(1),
                url: row.get(2),
                secret: row.get(3),
                body: row.get(4),
                attempts: row.get(5),
            })
            .collect())
    }

    /// Records how `holder`'s attempt of a delivery ended and releases its claim. Nothing
    /// happens if the claim was lost (its lease passed and another worker took the row).
    pub async fn record_webhook_attempt(
        &self,
        delivery_id: i64,
        holder: uuid::Uuid,
        outcome: &AttemptOutcome,
    ) -> Result<bool, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE webhook_deliveries SET state = $3, last_status_code = $4, last_error = $5, \
                 next_attempt_at = CASE WHEN $3 = 'pending' \
                                        THEN now() + $6::bigint * interval '1 millisecond' ELSE next_attempt_at END, \
                 delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END, \
                 locked_until = NULL, locked_by = NULL \
                 WHERE id = $1 AND locked_by = $2",
            )
            .await?;
        let (state, status, error, retry_in) = match outcome {
            AttemptOutcome::Delivered { status } => {
                (DeliveryState::Delivered, Some(*status), None, None)
            }
            AttemptOutcome::Failed {
                status,
                error,
                retry_in,
            } => (
                match retry_in {
                    Some(_) => DeliveryState::Pending,
                    None => DeliveryState::Failed,
                },
                *status,
                Some(error.as_str()),
                *retry_in,
            ),
        };
        let interval = i64::try_from(retry_in.unwrap_or_default().as_millis()).unwrap_or(i64::MAX);
        let updated = client
            .execute(
                &statement,
                &[
                    &delivery_id,
                    &holder.to_string(),
                    &state.name(),
                    &status.map(i32::from),
                    &error,
                    &interval,
                ],
            )
            .await?;
        Ok(updated == 1)
    }

    /// When the next delivery of an enabled endpoint not in `busy` is due, if any is: the
    /// earliest of each endpoint's first pending delivery (one index probe per endpoint; a
    /// first one held by another worker hides the rest until the caller's next poll).
    pub async fn next_webhook_due(&self, busy: &[i64]) -> Result<Option<DateTime<Utc>>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT min(d.due) FROM webhook_endpoints w \
                 CROSS JOIN LATERAL ( \
                     SELECT GREATEST(d.next_attempt_at, d.locked_until) AS due \
                     FROM webhook_deliveries d \
                     WHERE d.endpoint_id = w.id AND d.state = 'pending' \
                     ORDER BY d.next_attempt_at, d.id \
                     LIMIT 1 \
                 ) d \
                 WHERE w.enabled AND w.id <> ALL ($1::bigint[])",
            )
            .await?;
        Ok(client.query_one(&statement, &[&busy]).await?.get(0))
    }
}
