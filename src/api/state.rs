//! What every handler may use, shared by all requests: the stores, the ingest pipeline's limits
//! and queue, and the settings the operations read.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::body::read::BodyLimits;
use super::ingest::auth_failures::AuthFailureLog;
use super::ingest::rate_limit::RateLimit;
use super::ingest::slots::IngestSlots;
use crate::domain::snapshot::SkewWindow;
use crate::store::Store;
use crate::store::agent_cache::AgentTokenCache;
use crate::store::event_feed::EventFeed;
use crate::store::ingest::queue::IngestQueue;
use crate::store::replica::Reads;

/// What every handler may use; shared by all requests.
pub type AppState = Arc<State>;

pub struct State {
    /// The primary: writes, authentication, admin changes.
    pub store: Store,
    /// Where the read API's queries go (a fresh replica, else the primary).
    pub reads: Reads,
    pub rate_limit: RateLimit,
    /// Failed agent authentications per client address: beyond the limit an unknown bearer is
    /// answered from memory alone (never 429; see [`super::ingest::admission`]).
    pub auth_failures: RateLimit<IpAddr>,
    /// The same, all addresses together.
    pub auth_failure_lookups: RateLimit<()>,
    /// Failed admin authentications per client address (429 beyond the limit).
    pub admin_auth_failures: RateLimit<IpAddr>,
    /// Refused agent requests: counter, log lines and the last hour's summary.
    pub auth_failure_log: AuthFailureLog,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
    pub skew: SkewWindow,
    pub body_limits: BodyLimits,
    /// Every agent token, kept exact by the LISTEN/NOTIFY listener.
    pub agent_cache: Arc<AgentTokenCache>,
    /// A container not seen for this long is flagged stale in listings.
    pub container_stale_after: Duration,
    /// Bounds the telemetry bodies read, parsed and awaiting their commit at once.
    pub ingest_slots: IngestSlots,
    /// Writes telemetry snapshots, batching those that arrive together.
    pub ingest_queue: IngestQueue,
    /// New events for live streams, from whichever process wrote them.
    pub event_feed: Arc<EventFeed>,
    /// Between the comment heartbeats of a live event stream.
    pub event_heartbeat: Duration,
    /// How webhooks are delivered; the API checks endpoints' URLs against it.
    pub webhooks: crate::webhooks::WebhookSettings,
}

impl State {
    /// Forgets the limits' and the failure log's entries that no longer count at `now`, so their
    /// memory follows the active clients rather than every client ever seen.
    pub fn forget_idle(&self, now: Instant) {
        self.rate_limit.forget_idle(now);
        self.auth_failures.forget_idle(now);
        self.admin_auth_failures.forget_idle(now);
        self.auth_failure_lookups.forget_idle(now);
        self.auth_failure_log.forget_old(chrono::Utc::now());
    }
}
