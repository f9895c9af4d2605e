//! The HTTP layer, in the order a request meets it: [`ingest`] (the agent's admission, body and
//! handler), [`admin`] (the operators' resources), [`ops`]; then what every operation shares:
//! [`state`], [`errors`] (problem details) and [`openapi`] (the published document). This
//! module assembles the routes and the application.

pub mod admin;
pub mod body;
pub mod errors;
pub mod ingest;
pub mod openapi;
pub mod ops;
pub mod state;

use poem::{Endpoint, EndpointExt};
use poem_openapi::{OpenApiService, Tags};

pub use state::{AppState, State};

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
    ingest::handler::TelemetryApi,
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
/// [`openapi::document::document`] only, which rewrites it for client generators.
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
    openapi::document::routes()
        .nest("/", openapi())
        .data(state)
        .data(body_limits)
        // Every error becomes problem details here, so the request log sees the final answer.
        .catch_all_error(|error| async move { errors::error_response::render(error) })
        .with(crate::http::request_log::RequestLog)
        .around(|endpoint, request| async move {
            let accept = request.header("Accept").map(str::to_owned);
            let mut response = endpoint.call(request).await?;
            errors::problem::negotiate(accept.as_deref(), &mut response);
            Ok(response)
        })
}
