//! Webhook delivery (docs/alerts.md, "Webhooks"): every server process runs
//!
//! - a fan-out task, woken by the events table's NOTIFY and by a periodic poll, that queues new
//!   events for the endpoints that subscribe to them ([`Store::fan_out_webhooks`]; one process
//!   at a time, by the cursor row's lock);
//! - a dispatcher that claims due deliveries and posts them, at most one in flight per endpoint
//!   and `--webhook-concurrency` in all, each in its own task, so a slow or dead receiver holds
//!   up neither the others nor the ingest (which only writes events, never waits on webhooks).
//!
//! The outbox is the source of truth: nothing is kept in memory that a restart would lose.

pub mod client;
pub mod payload;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use crate::domain::webhook::{message_id, retry_delay, signature};
use crate::store::Store;
use crate::store::events::EVENTS_CHANNEL;
use crate::store::webhooks::{AttemptOutcome, ClaimedDelivery};

/// `application_name` of the fan-out's LISTEN connection.
pub const LISTENER_APPLICATION_NAME: &str = "nexus-telemetry-webhooks";

/// How often the dispatcher looks without being woken (deliveries queued by another process).
const POLL: Duration = Duration::from_secs(1);

/// How often the fan-out looks without being woken: the events table's NOTIFY wakes it, so
/// this only covers notifications lost while its listener reconnects.
const FAN_OUT_POLL: Duration = Duration::from_secs(10);

/// Events the fan-out reads per transaction.
const FAN_OUT_PAGE: i64 = 500;

/// The status by which a receiver says its endpoint is gone: the endpoint is disabled.
const GONE: u16 = 410;

/// Pause before a failed LISTEN connection is retried.
const RECONNECT: Duration = Duration::from_secs(5);

/// How webhooks are delivered (`serve`'s `--webhook-*` flags).
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// Deliver to (and accept endpoints on) loopback, private and link-local addresses.
    pub allow_private: bool,
    /// Longest one attempt may take (connect, send, answer).
    pub attempt_timeout: Duration,
    /// The retry schedule's unit ([`crate::domain::webhook::RETRY_STEPS`]).
    pub retry_base: Duration,
    /// Deliveries in flight at once in this process.
    pub concurrency: usize,
}

impl WebhookSettings {
    /// How long a claim holds a delivery: twice the attempt's timeout, so a live worker always
    /// records its outcome first, and a dead one's rows are retried soon after.
    pub fn lease(&self) -> Duration {
        self.attempt_timeout * 2
    }
}

/// Starts the fan-out and the dispatcher; they stop when the handles are aborted.
pub fn spawn(store: Store, settings: WebhookSettings) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let http = client::http_client(settings.attempt_timeout, settings.allow_private)?;
    let new_events = Arc::new(Notify::new());
    let queued = Arc::new(Notify::new());
    Ok(vec![
        tokio::spawn(listen(store.session_url().to_owned(), new_events.clone())),
        tokio::spawn(fan_out(store.clone(), new_events, queued.clone())),
        tokio::spawn(dispatch(store, http, settings, queued)),
    ])
}

/// Wakes the fan-out on every NOTIFY of the events table, reconnecting when the session ends.
async fn listen(url: String, new_events: Arc<Notify>) {
    loop {
        if let Err(error) = listen_once(&url, &new_events).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "webhook listener ended; polling until it reconnects"
            );
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn listen_once(url: &str, new_events: &Notify) -> anyhow::Result<()> {
    let (client, mut connection) =
        crate::store::listener_connection(url, LISTENER_APPLICATION_NAME).await?;
    let (listening, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if matches!(message, Ok(AsyncMessage::Notification(_)) | Err(_))
                && listening.send(message.is_ok()).is_err()
            {
                return;
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {EVENTS_CHANNEL}"))
            .await?;
        // Events written before LISTEN took effect are found by this first wake-up.
        new_events.notify_one();
        while let Some(ok) = messages.recv().await {
            anyhow::ensure!(ok, "the listener connection failed");
            new_events.notify_one();
        }
        anyhow::bail!("the listener connection closed")
    }
    .await;
    driver.abort();
    result
}

async fn fan_out(store: Store, new_events: Arc<Notify>, queued: Arc<Notify>) {
    loop {
        let _ = tokio::time::timeout(FAN_OUT_POLL, new_events.notified()).await;
        loop {
            match store.fan_out_webhooks(FAN_OUT_PAGE, payload::render).await {
                Ok(Some(read)) => {
                    if read > 0 {
                        queued.notify_one();
                    }
                    if read < FAN_OUT_PAGE as usize {
                        break;
                    }
                }
                // Another process is fanning out; it will take these events too.
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "webhook fan-out failed");
                    break;
                }
            }
        }
    }
}

/// Claims and posts due deliveries while any are due, then waits for the next one due, a
/// wake-up, or the poll.
async fn dispatch(
    store: Store,
    http: reqwest::Client,
    settings: WebhookSettings,
    queued: Arc<Notify>,
) {
    let holder = uuid::Uuid::new_v4();
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let busy: Arc<Mutex<HashSet<i64>>> = Arc::default();
    loop {
        let free = slots.available_permits();
        let in_flight: Vec<i64> = busy.lock().expect("busy").iter().copied().collect();
        let claimed = if free == 0 {
            Ok(Vec::new())
        } else {
            store
                .claim_webhook_deliveries(holder, settings.lease(), free as i64, &in_flight)
                .await
        };
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "claiming webhook deliveries failed"
                );
                Vec::new()
            }
        };
        if claimed.is_empty() {
            // Endpoints in flight are left out: their deliveries wake this loop when they end.
            let wait = match store.next_webhook_due(&in_flight).await {
                Ok(Some(due)) => (due - Utc::now()).to_std().unwrap_or_default().min(POLL),
                _ => POLL,
            };
            // A floor, so that rows due now but claimed elsewhere do not spin the loop.
            let wait = wait.max(Duration::from_millis(20));
            let _ = tokio::time::timeout(wait, queued.notified()).await;
            continue;
        }
        for delivery in claimed {
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            busy.lock().expect("busy").insert(delivery.endpoint_id);
            let (store, http, busy, queued) =
                (store.clone(), http.clone(), busy.clone(), queued.clone());
            tokio::spawn(async move {
                let endpoint = delivery.endpoint_id;
                attempt(&store, &http, holder, settings, delivery).await;
                busy.lock().expect("busy").remove(&endpoint);
                drop(permit);
                queued.notify_one();
            });
        }
    }
}

/// Posts one claimed delivery and records how it went.
async fn attempt(
    store: &Store,
    http: &reqwest::Client,
    holder: uuid::Uuid,
    settings: WebhookSettings,
    delivery: ClaimedDelivery,
) {
    let (status, error) = match post(http, settings, &delivery).await {
        Ok(status) if (200..300).contains(&status) => (Some(status), None),
        Ok(status) => (
            Some(status),
            Some(format!("the receiver answered {status}")),
        ),
        Err(error) => (None, Some(error)),
    };
    let outcome = match (status, error) {
        (Some(status), None) => AttemptOutcome::Delivered { status },
        // The receiver says the endpoint is gone for good: stop, rather than retry for a day.
        (Some(GONE), _) => AttemptOutcome::Failed {
            status: Some(GONE),
            error: "the receiver answered 410 Gone; the endpoint was disabled".into(),
            retry_in: None,
        },
        (status, error) => AttemptOutcome::Failed {
            status,
            error: error.unwrap_or_default(),
            retry_in: retry_delay(delivery.attempts, settings.retry_base, rand::random()),
        },
    };
    if status == Some(GONE)
        && let Err(error) = store.disable_webhook(delivery.endpoint_id).await
    {
        tracing::warn!(
            endpoint = delivery.endpoint_id,
            error = format!("{error:#}"),
            "disabling a webhook endpoint that answered 410 failed"
        );
    }
    tracing::debug!(delivery = delivery.id, ?outcome, "webhook attempt");
    match store
        .record_webhook_attempt(delivery.id, holder, &outcome)
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            delivery = delivery.id,
            "a webhook delivery's claim expired before its outcome was recorded"
        ),
        // The claim lapses and the delivery is attempted again: at least once.
        Err(error) => tracing::warn!(
            delivery = delivery.id,
            error = format!("{error:#}"),
            "recording a webhook attempt failed"
        ),
    }
}

/// One signed POST; the receiver's status, or what kept it from answering.
async fn post(
    http: &reqwest::Client,
    settings: WebhookSettings,
    delivery: &ClaimedDelivery,
) -> Result<u16, String> {
    let url = reqwest::Url::parse(&delivery.url).map_err(|error| error.to_string())?;
    // A literal address is never resolved, so the resolver's guard does not see it.
    if let Some(address) = url.host_str().and_then(client::literal_address)
        && !settings.allow_private
        && let Some(range) = crate::domain::webhook::private_range(address)
    {
        return Err(crate::domain::webhook::private_refusal(address, range));
    }
    let id = message_id(delivery.id);
    let timestamp = Utc::now().timestamp();
    let signature = signature(&delivery.secret, &id, timestamp, &delivery.body)
        .map_err(|_| "the endpoint's secret cannot be decoded".to_owned())?;
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.clone())
        .send()
        .await
        // Without the URL: it may carry a token (Slack's do).
        .map_err(|error| error_chain(&error.without_url()))?;
    Ok(response.status().as_u16())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
