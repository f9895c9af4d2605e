//! Authentication and rate limiting of `POST /agent/telemetry`, as a middleware run before the
//! body is read: bearer → token lookup (cached) → per-token quota → a free ingest slot (see
//! [`super::ingest_slots`]) → the handler → `last_used_at` stamp, which also re-checks that the
//! token is still valid. A stored snapshot's token is stamped (and re-checked) by the very
//! transaction that stores it; any other answer to an admitted request is stamped here.
//!
//! The handler receives an [`AgentToken`]; obtaining it is the check, and the security scheme
//! documents the bearer in the OpenAPI document.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::rate_limit::Admitted;
use super::{AppState, problem};
use crate::domain::token::TokenHash;
use crate::error::Error;
use crate::store::tokens::AuthenticatedAgent;

/// An agent token (`Authorization: Bearer nxa_…`), issued per host.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "nxa_<64 hex digits>",
    checker = "admitted_agent"
)]
pub struct AgentToken(pub AgentSession);

/// An authenticated agent whose request the rate limit admitted.
#[derive(Debug, Clone, Copy)]
pub struct AgentSession {
    pub agent: AuthenticatedAgent,
    pub quota: Admitted,
}

async fn admitted_agent(request: &Request, _: Bearer) -> poem::Result<AgentSession> {
    request
        .extensions()
        .get::<AgentSession>()
        .copied()
        .ok_or_else(|| Error::Unauthorized.into())
}

/// Wraps the telemetry operation (used as its `transform`).
pub fn agent_auth(endpoint: impl Endpoint + 'static) -> impl Endpoint {
    endpoint.around(|endpoint, mut request| async move {
        let state = request
            .data::<AppState>()
            .expect("AppState is app data")
            .clone();
        let client = client_address(&request);
        // An address that keeps failing is refused before its guesses cost a database lookup.
        state
            .auth_failures
            .peek(client, Instant::now())
            .map_err(Error::from_auth_failures)?;
        let hash = bearer_token(&request).map(TokenHash::of);
        let agent = match &hash {
            Some(hash) => state.agent_cache.authenticate(&state.store, hash).await?,
            None => None,
        };
        let (Some(hash), Some(agent)) = (hash, agent) else {
            let _ = state.auth_failures.check(client, Instant::now());
            return Err(Error::Unauthorized.into());
        };
        let admitted = match state.rate_limit.check(agent.token_id, Instant::now()) {
            Ok(admitted) => admitted,
            Err(error @ Error::RateLimited { limit, .. }) => {
                return Ok(with_quota(
                    poem::Error::from(error).into_response(),
                    limit,
                    0,
                ));
            }
            Err(error) => return Err(error.into()),
        };
        let slot = state.ingest_slots.acquire().await?;
        request.extensions_mut().insert(AgentSession {
            agent,
            quota: admitted,
        });
        let response = match endpoint.call(request).await {
            Ok(response) => response.into_response(),
            Err(error) => problem::error_response(error),
        };
        drop(slot);
        let still_valid = match response.status() {
            StatusCode::NO_CONTENT => true, // stamped by the transaction that stored the snapshot
            StatusCode::UNAUTHORIZED => false, // refused by that transaction
            status if status.is_server_error() => true, // nothing to stamp with
            _ => state.store.stamp_token(agent.token_id).await?,
        };
        if !still_valid {
            // Revoked (or its host archived) after the lookup, before the notification came.
            state.agent_cache.forget(&hash);
            return Err(Error::Unauthorized.into());
        }
        Ok(with_quota(response, admitted.limit, admitted.remaining))
    })
}

fn with_quota(mut response: Response, limit: u32, remaining: u32) -> Response {
    let headers = response.headers_mut();
    headers.insert("X-RateLimit-Limit", limit.into());
    headers.insert("X-RateLimit-Remaining", remaining.into());
    response
}

/// The peer's IP address (not a forwarded header, which any client can forge).
pub(crate) fn client_address(request: &Request) -> IpAddr {
    request
        .remote_addr()
        .as_socket_addr()
        .map(|addr| addr.ip())
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
}

/// The token of an `Authorization: Bearer <token>` header; `None` for anything else
/// (other schemes, empty or space-containing tokens, non-ASCII bytes).
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.headers().get("Authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}
