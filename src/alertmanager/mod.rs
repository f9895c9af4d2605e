//! Delivery to Prometheus Alertmanager (docs/alerts.md#alertmanager): the process holding the
//! `alertmanager_sender` lease posts the firing alerts, and those resolved within
//! [`RESOLVE_RETENTION`], to every `--alertmanager-url`, as Prometheus does: again every resend
//! interval (a firing alert's `endsAt` lies [`RESENDS_BEFORE_END`] intervals ahead, so
//! Alertmanager resolves it by itself if we stop), and at once when the event feed shows an
//! alert firing or resolving. It also keeps a silence in each Alertmanager for every alert
//! silenced through our API (`endpoint.rs`), so those notify through neither path.

mod endpoint;
pub mod payload;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use chrono::Utc;
use reqwest::Url;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::http::metrics;
use crate::store::Store;
use crate::store::event_feed::{EventFeed, RecvError, Subscription};
use crate::store::events::EventKind;
use crate::store::leases::Lease;
use endpoint::Endpoint;

/// The lease (`leases.name`) of the one process that sends.
pub const LEASE: &str = "alertmanager_sender";
/// How long the lease lasts unrenewed: another process takes over within this and one
/// [`LEASE_CHECK`] after the holder stops.
pub const LEASE_TTL: Duration = Duration::from_secs(20);
/// How often the holder renews the lease, and the others try to take it.
const LEASE_CHECK: Duration = Duration::from_secs(5);
/// How long a resolved alert is still sent (Prometheus's resolve retention), so an Alertmanager
/// that was away meanwhile learns of the resolution.
pub const RESOLVE_RETENTION: Duration = Duration::from_secs(15 * 60);
/// A firing alert's `endsAt` is this many resend intervals ahead (Prometheus's choice).
pub const RESENDS_BEFORE_END: u32 = 4;
/// Longest retry interval of a failed post (shorter when the resend interval is).
const RETRY: Duration = Duration::from_secs(5);
/// Longest a request to an Alertmanager may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before listening to the event feed again after it failed.
const RESUBSCRIBE: Duration = Duration::from_secs(5);

/// What the sender needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Alertmanagers' base URLs; nothing is sent when empty.
    pub urls: Vec<Url>,
    pub resend_interval: Duration,
    /// Where our API is reached, for the links in the alerts.
    pub public_url: String,
    /// This server process's name in the lease ([`crate::store::leases::process_holder_name`]).
    pub holder: String,
}

impl Settings {
    /// The sender's lease, held as this process.
    fn lease(&self) -> Lease {
        Lease {
            name: LEASE,
            holder: self.holder.clone(),
            ttl: LEASE_TTL,
        }
    }
}

/// Gives the lease up (a server shutting down, its sender stopped), so another process takes
/// over at its next check rather than when the lease expires.
pub async fn release(store: &Store, settings: &Settings) {
    if settings.urls.is_empty() {
        return;
    }
    match store.release_lease(&settings.lease()).await {
        Ok(true) => tracing::info!("handed the sending to Alertmanager over"),
        Ok(false) => {}
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "cannot release the Alertmanager sender's lease; another process takes over when it expires"
        ),
    }
}

/// Sends until dropped (aborted); returns at once when no Alertmanager is configured.
pub async fn run(store: Store, feed: Arc<EventFeed>, settings: Settings) {
    if settings.urls.is_empty() {
        return;
    }
    let http = match http_client() {
        Ok(http) => http,
        Err(error) => {
            return tracing::error!(
                error = format!("{error:#}"),
                "no alerts will reach Alertmanager"
            );
        }
    };
    let lease = settings.lease();
    let (publish, batches) = watch::channel(None);
    // Dropped with this future, which aborts the deliveries.
    let mut deliveries = JoinSet::new();
    let retry = RETRY.min(settings.resend_interval);
    for url in &settings.urls {
        let endpoint = Endpoint::new(url, http.clone(), lease.clone(), &settings.public_url);
        deliveries.spawn(endpoint.deliver(batches.clone(), store.clone(), retry));
    }
    let mut lease_check = tokio::time::interval(LEASE_CHECK);
    let mut resend = tokio::time::interval(settings.resend_interval);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut subscription = None;
    let mut holding = false;
    loop {
        let round_due = tokio::select! {
            _ = lease_check.tick() => false,
            _ = resend.tick(), if holding => true,
            () = alert_transition(&feed, &mut subscription), if holding => true,
        };
        // The lease is checked before every round: a process that lost it stops sending.
        let was_holding = holding;
        holding = match store.take_lease(&lease).await {
            Ok(holding) => holding,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "cannot renew the Alertmanager sender's lease"
                );
                false
            }
        };
        metrics::set_alertmanager_sender(holding);
        if !holding {
            if was_holding {
                tracing::info!("another process sends to Alertmanager now");
            }
            publish.send_replace(None);
            subscription = None;
            continue;
        }
        if !was_holding {
            tracing::info!(
                urls = settings.urls.len(),
                "this process sends to Alertmanager"
            );
        }
        if round_due || !was_holding {
            match batch(&store, &settings).await {
                Ok(body) => {
                    publish.send_replace(Some(Arc::new(body)));
                }
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "reading the alerts for Alertmanager failed"
                ),
            }
        }
    }
}

/// The bodies of one round: every alert to send, as of now.
async fn batch(store: &Store, settings: &Settings) -> anyhow::Result<Vec<Bytes>> {
    let alerts = store
        .alerts_to_send(RESOLVE_RETENTION)
        .await
        .context("Failed to read the alerts to send")?;
    let firing_until = Utc::now()
        + chrono::Duration::from_std(settings.resend_interval * RESENDS_BEFORE_END)
            .context("resend interval out of range")?;
    let postable: Vec<_> = alerts
        .iter()
        .map(|alert| payload::postable(alert, firing_until, &settings.public_url))
        .collect();
    Ok(payload::bodies(&postable)?)
}

/// Returns when the event feed shows an alert firing or resolving (after taking in the
/// transitions already queued, so a burst makes one round), or when transitions may have been
/// missed: on (re)subscribing and when this reader fell behind.
async fn alert_transition(feed: &Arc<EventFeed>, subscription: &mut Option<Subscription>) {
    loop {
        let Some(live) = subscription.as_mut() else {
            let mut fresh = feed.subscribe();
            if fresh.listening().await.is_err() {
                tokio::time::sleep(RESUBSCRIBE).await;
                continue;
            }
            *subscription = Some(fresh);
            return;
        };
        match live.receiver.recv().await {
            Ok(event) if is_delivered(event.kind) => {
                while live.receiver.try_recv().is_ok() {}
                return;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => {
                *subscription = None;
                tokio::time::sleep(RESUBSCRIBE).await;
            }
        }
    }
}

fn is_delivered(kind: EventKind) -> bool {
    matches!(kind, EventKind::AlertFiring | EventKind::AlertResolved)
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider (as the agent's); the process installs
    // ring's once, whoever comes first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("nexus-telemetry/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("Failed to build the Alertmanager HTTP client")
}
