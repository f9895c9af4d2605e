//! Admission to `POST /agent/telemetry`: one guard ([`AdmissionGuard`], the operation's
//! `transform`) run before the body is read. It admits a request in this order: bearer → token
//! lookup (in memory, see [`crate::store::agent_cache`]) → standing (revoked, archived) →
//! fingerprint → per-token quota ([`super::rate_limit`]) → fingerprint binding → a free ingest
//! slot ([`super::slots`]). The handler receives the [`Admission`]; obtaining it is the check,
//! and the security scheme documents the bearer in the OpenAPI document.
//!
//! After the handler, the guard settles the token by what the handler reported
//! ([`IngestVerdict`]): a stored snapshot's token was stamped (and re-checked) by the very
//! transaction that stored it, and that transaction's fleet-wide count of the token's posts
//! informs the limiter; a request that stored nothing gets its `last_used_at` stamp here, which
//! also re-checks that the token is still valid.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::auth_failures::Reason;
use super::rate_limit::Admitted;
use crate::api::errors::error_response;
use crate::api::{AppState, State};
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
pub struct AgentToken(pub Admission);

/// An authenticated agent whose request the guard admitted, and where the handler reports what
/// storing its snapshot did with the token.
#[derive(Debug, Clone)]
pub struct Admission {
    pub agent: AuthenticatedAgent,
    pub quota: Admitted,
    verdict: Arc<Mutex<Option<IngestVerdict>>>,
}

impl Admission {
    /// Tells the guard what the ingest did with the token; it acts on it once the handler has
    /// answered.
    pub fn report(&self, verdict: IngestVerdict) {
        *self.verdict.lock().expect("ingest verdict") = Some(verdict);
    }

    fn verdict(&self) -> Option<IngestVerdict> {
        self.verdict.lock().expect("ingest verdict").take()
    }
}

/// What storing an admitted request's snapshot did with its token. A request without one (its
/// body was refused, so nothing was written) has its token stamped by the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestVerdict {
    /// Stored: the same transaction stamped the token, so it was still valid, and counted the
    /// post in the token's fleet-wide log, whose posts in the window are these ages.
    Stamped { fleet_post_ages: Vec<Duration> },
    /// The transaction found the token revoked or its host archived; nothing was written.
    Refused,
    /// The store failed; there is nothing to stamp with.
    Failed,
}

async fn admitted_agent(request: &Request, _: Bearer) -> poem::Result<Admission> {
    request
        .extensions()
        .get::<Admission>()
        .cloned()
        .ok_or_else(|| Error::Unauthorized.into())
}

/// Wraps the telemetry operation in its [`AdmissionGuard`] (used as its `transform`).
pub fn admission<E: Endpoint + 'static>(endpoint: E) -> AdmissionGuard<E> {
    AdmissionGuard(endpoint)
}

/// The guard of the telemetry operation: no request reaches it unadmitted, and each admitted
/// request's token is settled after it answered.
pub struct AdmissionGuard<E>(E);

impl<E: Endpoint> Endpoint for AdmissionGuard<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let state = request
            .data::<AppState>()
            .expect("AppState is app data")
            .clone();
        let gate = Gate {
            client: client_address(&request, &state.trusted_proxies),
            state: &state,
        };
        let ticket = match gate.admit(&request).await? {
            Decision::Admitted(ticket) => ticket,
            Decision::OverQuota(response) => return Ok(response),
        };
        let slot = state.ingest_slots.acquire().await?;
        let admission = Admission {
            agent: ticket.agent,
            quota: ticket.quota,
            verdict: Arc::default(),
        };
        request.extensions_mut().insert(admission.clone());
        let response = match self.0.call(request).await {
            Ok(response) => response.into_response(),
            Err(error) => error_response::render(error),
        };
        drop(slot);
        gate.settle(&ticket, admission.verdict()).await?;
        Ok(with_quota(
            response,
            ticket.quota.limit,
            ticket.quota.remaining,
        ))
    }
}

/// One request's way through admission: the server's state and the client it came from.
struct Gate<'a> {
    state: &'a State,
    client: IpAddr,
}

/// A request the gate let through.
struct Ticket {
    agent: AuthenticatedAgent,
    hash: TokenHash,
    quota: Admitted,
}

enum Decision {
    Admitted(Ticket),
    /// The token's quota is used up: the 429 to answer, with its quota headers.
    OverQuota(Response),
}

impl Gate<'_> {
    /// Records a refusal in the failure log: the 401 to answer.
    fn refuse(&self, reason: Reason, token_id: Option<i64>) -> poem::Error {
        self.state
            .auth_failure_log
            .record(self.client, reason, token_id, Utc::now());
        poem::Error::from(Error::Unauthorized)
    }

    async fn admit(&self, request: &Request) -> poem::Result<Decision> {
        let state = self.state;
        let Some(bearer) = bearer_token(request) else {
            return Err(self.refuse(Reason::Missing, None));
        };
        let hash = TokenHash::of(bearer);
        let token = match known_token(state, self.client, &hash).await? {
            Some(token) => token,
            None => return Err(self.refuse(Reason::Invalid, None)),
        };
        let token_id = Some(token.agent.token_id);
        match token.standing {
            Standing::Active => {}
            Standing::Revoked => return Err(self.refuse(Reason::Revoked, token_id)),
            Standing::HostArchived => return Err(self.refuse(Reason::Archived, token_id)),
        }
        // Hashed only for the tokens that bind.
        let fingerprint = (token.binding != Binding::None)
            .then(|| Fingerprint::of(self.client, user_agent(request)));
        if let (Binding::Bound(bound), Some(fingerprint)) = (token.binding, fingerprint)
            && bound != fingerprint
        {
            return Err(self.refuse(Reason::FingerprintMismatch, token_id));
        }
        let agent = token.agent;
        let quota = match state.rate_limit.check(agent.token_id, Instant::now()) {
            Ok(quota) => quota,
            Err(error @ Error::RateLimited { limit, .. }) => {
                state.auth_failure_log.record(
                    self.client,
                    Reason::RateLimited,
                    token_id,
                    Utc::now(),
                );
                let response = poem::Error::from(error).into_response();
                return Ok(Decision::OverQuota(with_quota(response, limit, 0)));
            }
            Err(error) => return Err(error.into()),
        };
        if let (Binding::Unclaimed, Some(fingerprint)) = (token.binding, fingerprint) {
            // The first admitted request binds the token; of two racing, the first to commit wins.
            let bound = state
                .agent_cache
                .bind_fingerprint(&state.store, &hash, agent.token_id, fingerprint)
                .await?;
            if bound != Some(fingerprint) {
                return Err(self.refuse(Reason::FingerprintMismatch, token_id));
            }
        }
        Ok(Decision::Admitted(Ticket { agent, hash, quota }))
    }

    /// Acts on what the handler reported: the limiter learns the fleet's count of a stored
    /// post, and a token found no longer valid (revoked, or its host archived, after the lookup
    /// and before the notification came) is refused from now on, this request included.
    async fn settle(&self, ticket: &Ticket, verdict: Option<IngestVerdict>) -> poem::Result<()> {
        let state = self.state;
        let token_id = ticket.agent.token_id;
        let still_valid = match verdict {
            Some(IngestVerdict::Stamped { fleet_post_ages }) => {
                state
                    .rate_limit
                    .learn_fleet(token_id, &fleet_post_ages, Instant::now());
                true
            }
            Some(IngestVerdict::Refused) => {
                state.agent_cache.mark_refused(&ticket.hash);
                false
            }
            Some(IngestVerdict::Failed) => true,
            None => {
                state
                    .agent_cache
                    .stamp(&state.store, &ticket.hash, token_id)
                    .await?
            }
        };
        if !still_valid {
            return Err(self.refuse(Reason::Revoked, Some(token_id)));
        }
        Ok(())
    }
}

/// The token of `hash`, from memory; from the database only when memory cannot tell (a token
/// created milliseconds ago, or the index not loaded) and neither the address nor all
/// addresses together have used up their failure budgets. An unknown bearer beyond them is
/// refused without a query; a lookup the index cannot answer beyond them gets 503 (retry),
/// never a 401 that would stop a valid agent.
async fn known_token(
    state: &State,
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
