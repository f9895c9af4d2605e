//! Authentication and rate limiting of `POST /agent/telemetry`, as a middleware run before the
//! body is read: bearer → token lookup (in memory, see [`crate::store::agent_cache`]) →
//! standing (revoked, archived) → fingerprint binding → per-token quota → a free ingest slot (see
//! [`super::slots`]) → the handler → `last_used_at` stamp, which also re-checks that the
//! token is still valid. A stored snapshot's token is stamped (and re-checked) by the very
//! transaction that stores it; any other answer to an admitted request is stamped here.
//!
//! The handler receives an [`AgentToken`]; obtaining it is the check, and the security scheme
//! documents the bearer in the OpenAPI document.

use std::net::IpAddr;
use std::time::Instant;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use chrono::Utc;

use super::auth_failures::Reason;
use super::rate_limit::Admitted;
use crate::api::AppState;
use crate::api::errors::error_response;
use crate::domain::token::{Fingerprint, TokenHash};
use crate::error::Error;
use crate::http::client_address::client_address;
use crate::store::agent_cache::{Binding, KnownToken, Lookup, Standing};
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
        let client = client_address(&request, &state.trusted_proxies);
        let refuse = |reason: Reason, token_id: Option<i64>| {
            state
                .auth_failure_log
                .record(client, reason, token_id, Utc::now());
            poem::Error::from(Error::Unauthorized)
        };
        let Some(bearer) = bearer_token(&request) else {
            return Err(refuse(Reason::Missing, None));
        };
        let hash = TokenHash::of(bearer);
        let token = match known_token(&state, client, &hash).await? {
            Some(token) => token,
            None => return Err(refuse(Reason::Invalid, None)),
        };
        let token_id = Some(token.agent.token_id);
        match token.standing {
            Standing::Active => {}
            Standing::Revoked => return Err(refuse(Reason::Revoked, token_id)),
            Standing::HostArchived => return Err(refuse(Reason::Archived, token_id)),
        }
        // Hashed only for the tokens that bind.
        let fingerprint =
            (token.binding != Binding::None).then(|| Fingerprint::of(client, user_agent(&request)));
        if let (Binding::Bound(bound), Some(fingerprint)) = (token.binding, fingerprint)
            && bound != fingerprint
        {
            return Err(refuse(Reason::FingerprintMismatch, token_id));
        }
        let agent = token.agent;
        let admitted = match state.rate_limit.check(agent.token_id, Instant::now()) {
            Ok(admitted) => admitted,
            Err(error @ Error::RateLimited { limit, .. }) => {
                state
                    .auth_failure_log
                    .record(client, Reason::RateLimited, token_id, Utc::now());
                return Ok(with_quota(
                    poem::Error::from(error).into_response(),
                    limit,
                    0,
                ));
            }
            Err(error) => return Err(error.into()),
        };
        if let (Binding::Unclaimed, Some(fingerprint)) = (token.binding, fingerprint) {
            // The first admitted request binds the token; of two racing, the first to commit wins.
            let bound = state
                .store
                .bind_fingerprint(agent.token_id, fingerprint)
                .await?;
            if let Some(bound) = bound {
                state.agent_cache.mark_bound(&hash, bound);
            }
            if bound != Some(fingerprint) {
                return Err(refuse(Reason::FingerprintMismatch, token_id));
            }
        }
        let slot = state.ingest_slots.acquire().await?;
        request.extensions_mut().insert(AgentSession {
            agent,
            quota: admitted,
        });
        let response = match endpoint.call(request).await {
            Ok(response) => response.into_response(),
            Err(error) => error_response::render(error),
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
            state.agent_cache.mark_refused(&hash);
            return Err(refuse(Reason::Revoked, token_id));
        }
        Ok(with_quota(response, admitted.limit, admitted.remaining))
    })
}

/// The token of `hash`, from memory; from the database only when memory cannot tell (a token
/// created milliseconds ago, or the index not loaded) and neither the address nor all
/// addresses together have used up their failure budgets. An unknown bearer beyond them is
/// refused without a query; a lookup the index cannot answer beyond them gets 503 (retry),
/// never a 401 that would stop a valid agent.
async fn known_token(
    state: &AppState,
    client: IpAddr,
    hash: &TokenHash,
) -> Result<Option<KnownToken>, Error> {
    let lookup = state.agent_cache.lookup(hash);
    if let Lookup::Known(token) = lookup {
        return Ok(Some(token));
    }
    let now = Instant::now();
    if state.auth_failures.peek(client, now).is_err()
        || state.auth_failure_lookups.peek((), now).is_err()
    {
        return match lookup {
            Lookup::NotLive => Err(Error::Unavailable(anyhow::anyhow!(
                "the token index is not loaded and {client} is over its failure budget"
            ))),
            _ => Ok(None),
        };
    }
    let found = state
        .agent_cache
        .look_up_in_database(&state.store, hash)
        .await?;
    if found.is_none_or(|token| token.standing != Standing::Active) {
        let _ = state.auth_failures.check(client, now);
        let _ = state.auth_failure_lookups.check((), now);
    }
    Ok(found)
}

fn with_quota(mut response: Response, limit: u32, remaining: u32) -> Response {
    let headers = response.headers_mut();
    headers.insert("X-RateLimit-Limit", limit.into());
    headers.insert("X-RateLimit-Remaining", remaining.into());
    response
}

/// The `User-Agent` header, empty when absent or not text.
fn user_agent(request: &Request) -> &str {
    request
        .headers()
        .get("User-Agent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
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
