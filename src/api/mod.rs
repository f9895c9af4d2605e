//! The HTTP layer: one module per resource, the shared request/response plumbing, and the
//! assembly of routes, OpenAPI document and docs.

pub mod agent_auth;
pub mod ingest_slots;
pub mod json_body;
pub mod problem;
pub mod rate_limit;
pub mod telemetry;

use std::sync::Arc;

use poem::middleware::SetHeader;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::domain::snapshot::SkewWindow;
use crate::store::Store;
use ingest_slots::IngestSlots;
use json_body::BodyLimit;
use rate_limit::RateLimit;

/// What every handler may use; shared by all requests.
pub type AppState = Arc<State>;

pub struct State {
    pub store: Store,
    pub rate_limit: RateLimit,
    pub skew: SkewWindow,
    pub body_limit: usize,
    pub ingest_slots: IngestSlots,
}

#[derive(Tags)]
pub enum ApiTags {
    /// Endpoints called by agents on monitored hosts.
    Agent,
}

type Apis = telemetry::TelemetryApi;

/// The OpenAPI service, also used to print and snapshot the document.
pub fn openapi() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        telemetry::TelemetryApi,
        "nexus-telemetry",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Ingests host and Docker-container telemetry into TimescaleDB. Errors are RFC 9457 \
             problem details (`application/problem+json`) whose `errors` array names each \
             failing field by path. Timestamps are RFC 3339.",
    )
    .license("Apache-2.0")
}

/// The whole HTTP application.
pub fn app(state: AppState) -> impl Endpoint {
    let service = openapi();
    let docs = service.swagger_ui();
    let body_limit = BodyLimit(state.body_limit);
    Route::new()
        .at("/openapi.json", service.spec_endpoint())
        .at("/openapi.yaml", service.spec_endpoint_yaml())
        .nest(
            "/docs",
            docs.with(
                SetHeader::new()
                    .overriding("X-Content-Type-Options", "nosniff")
                    .overriding("X-Frame-Options", "DENY")
                    .overriding("Referrer-Policy", "no-referrer"),
            ),
        )
        .nest("/", service)
        .data(state)
        .data(body_limit)
        .catch_all_error(|error| async move { problem::error_response(error) })
}
