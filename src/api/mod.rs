//! The HTTP layer: one module per resource, the shared request/response plumbing, and the
//! assembly of routes, OpenAPI document and docs.

pub mod admin;
pub mod agent_auth;
pub mod auth_failures;
pub mod body;
pub mod document;
pub mod error_response;
pub mod ingest_slots;
pub mod operation_errors;
pub mod ops;
pub mod problem;
pub mod rate_limit;
pub mod telemetry;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt};
use poem_openapi::{OpenApiService, Tags};

use crate::domain::snapshot::SkewWindow;
use crate::store::Store;
use crate::store::agent_cache::AgentTokenCache;
use crate::store::event_feed::EventFeed;
use crate::store::ingest_queue::IngestQueue;
use crate::store::replica::Reads;
use body::read::BodyLimits;
use ingest_slots::IngestSlots;
use rate_limit::RateLimit;

/// What every handler may use; shared by all requests.
pub type AppState = Arc<State>;

pub struct State {
    /// The primary: writes, authentication, admin changes.
    pub store: Store,
    /// Where the read API's queries go (a fresh replica, else the primary).
    pub reads: Reads,
    pub rate_limit: RateLimit,
    /// Failed agent authentications per client address: beyond the limit an unknown bearer is
    /// answered from memory alone (never 429; see `agent_auth`).
    pub auth_failures: RateLimit<std::net::IpAddr>,
    /// The same, all addresses together.
    pub auth_failure_lookups: RateLimit<()>,
    /// Failed admin authentications per client address (429 beyond the limit).
    pub admin_auth_failures: RateLimit<std::net::IpAddr>,
    /// Refused agent requests: counter, log lines and the last hour's summary.
    pub auth_failure_log: auth_failures::AuthFailureLog,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub skew: SkewWindow,
    pub body_limits: BodyLimits,
    /// Every agent token, kept exact by the LISTEN/NOTIFY listener.
    pub agent_cache: Arc<AgentTokenCache>,
    /// A container not seen for this long is flagged stale in listings.
    pub container_stale_after: std::time::Duration,
    /// Bounds the telemetry bodies read, parsed and awaiting their commit at once.
    pub ingest_slots: IngestSlots,
    /// Writes telemetry snapshots, batching those that arrive together.
    pub ingest_queue: IngestQueue,
    /// New events for live streams, from whichever process wrote them.
    pub event_feed: Arc<EventFeed>,
    /// Between the comment heartbeats of a live event stream.
    pub event_heartbeat: std::time::Duration,
    /// How webhooks are delivered; the API checks endpoints' URLs against it.
    pub webhooks: crate::webhooks::WebhookSettings,
}

#[derive(Tags)]
pub enum ApiTags {
    /// Endpoints called by agents on monitored hosts.
    Agent,
    /// Liveness, readiness and metrics for operators and orchestrators.
    Operations,
    /// Managing hosts and their agent tokens; requires an admin token.
    Admin,
}

type Apis = (
    telemetry::TelemetryApi,
    ops::OpsApi,
    admin::hosts::HostsApi,
    admin::tokens::TokensApi,
    admin::readings::ReadingsApi,
    admin::events::EventsApi,
    admin::auth_failures::AuthFailuresApi,
    admin::alert_rules::AlertRulesApi,
    admin::alerts::AlertsApi,
    admin::webhooks::WebhooksApi,
);

/// The OpenAPI service: the operations. Its document is published through
/// [`document::document`] only, which rewrites it for client generators.
pub fn openapi() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        Apis::default(),
        "nexus-telemetry",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Ingests host and Docker-container telemetry into TimescaleDB. Errors are RFC 9457 \
             problem details (`application/problem+json`) whose `errors` array names each \
             failing field by path. Timestamps are RFC 3339.",
    )
    .license(
        poem_openapi::LicenseObject::new("Apache-2.0")
            .url("https://www.apache.org/licenses/LICENSE-2.0"),
    )
    .server(
        poem_openapi::ServerObject::new("http://127.0.0.1:8080")
            .description("A local server (the default of `nexus-telemetry serve --listen`)"),
    )
}

/// The whole HTTP application.
pub fn app(state: AppState) -> impl Endpoint {
    let body_limits = state.body_limits;
    document::routes()
        .nest("/", openapi())
        .data(state)
        .data(body_limits)
        // Every error becomes problem details here, so the request log sees the final answer.
        .catch_all_error(|error| async move { error_response::render(error) })
        .with(crate::http::request_log::RequestLog)
        .around(|endpoint, request| async move {
            let accept = request.header("Accept").map(str::to_owned);
            let mut response = endpoint.call(request).await?;
            problem::negotiate(accept.as_deref(), &mut response);
            Ok(response)
        })
}
