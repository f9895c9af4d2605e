//! Authentication and rate limiting of `POST /agent/telemetry`, as a middleware run before the
//! body is read: bearer → token lookup → per-token quota → `last_used_at` stamp → a free
//! ingest slot (see [`super::ingest_slots`]).
//!
//! The handler receives an [`AgentToken`]; obtaining it is the check, and the security scheme
//! documents the bearer in the OpenAPI document.

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
#[oai(ty = "bearer", checker = "admitted_agent")]
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
        let bearer = bearer_token(&request).ok_or(Error::Unauthorized)?;
        let agent = state
            .store
            .authenticate_agent(&TokenHash::of(bearer))
            .await?
            .ok_or(Error::Unauthorized)?;
        let admitted = match state
            .rate_limit
            .check(agent.token_id, std::time::Instant::now())
        {
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
        state.store.stamp_token(agent.token_id).await?;
        let _slot = state.ingest_slots.acquire().await?;
        request.extensions_mut().insert(AgentSession {
            agent,
            quota: admitted,
        });
        let response = match endpoint.call(request).await {
            Ok(response) => response.into_response(),
            Err(error) => problem::error_response(error),
        };
        Ok(with_quota(response, admitted.limit, admitted.remaining))
    })
}

fn with_quota(mut response: Response, limit: u32, remaining: u32) -> Response {
    let headers = response.headers_mut();
    headers.insert("X-RateLimit-Limit", limit.into());
    headers.insert("X-RateLimit-Remaining", remaining.into());
    response
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
