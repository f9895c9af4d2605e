//! The admin API under `/api/v1`: hosts and their agent tokens, for operators and integrators.
//!
//! Every operation takes an [`AdminToken`]: obtaining it is the check (an admin token, `nxk_…`,
//! unrevoked; agent tokens are refused). Each operation documents its own problems (with
//! [`documented!`](crate::api::openapi::operation_errors::documented)), then [`ADMIN_AUTHENTICATION`]'s and
//! the server faults every operation may answer.

pub mod alert_rules;
pub mod alerts;
pub mod auth_failures;
pub mod events;
pub mod hosts;
pub mod readings;
pub mod tokens;
pub mod webhooks;

use poem::PathPattern;
use poem::{Endpoint, EndpointExt, IntoResponse, Request};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use poem_openapi::error::ParsePathError;

use std::time::Instant;

use super::AppState;
use super::errors::problem::human_reason;
use super::openapi::document::path_param_name;
use super::openapi::operation_errors::{CHALLENGE, DocumentedProblem, RETRY_AFTER};
use crate::domain::token::TokenHash;
use crate::error::Error;
use crate::http::client_address::client_address;
use crate::store::admin_tokens::AdminSession;

/// An admin API token (`Authorization: Bearer nxk_…`), created with
/// `nexus-telemetry admin-token create`. Agent tokens are refused.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "nxk_<64 hex digits>",
    checker = "admin_session"
)]
pub struct AdminToken(pub AdminSession);

/// Looks the bearer up; failures count against the client address's limit, as on the agent
/// endpoint, so guessing admin tokens is throttled too (429 before any database lookup).
async fn admin_session(request: &Request, bearer: Bearer) -> poem::Result<AdminSession> {
    admin_session_of(request, &bearer.token).await
}

/// The admin session of `token`, however the request carried it; see [`admin_session`].
pub(crate) async fn admin_session_of(request: &Request, token: &str) -> poem::Result<AdminSession> {
    let state = request.data::<AppState>().expect("AppState is app data");
    let client = client_address(request, &state.trusted_proxies);
    state
        .admin_auth_failures
        .peek(client, Instant::now())
        .map_err(Error::from_auth_failures)?;
    match state
        .store
        .authenticate_admin(&TokenHash::of(token))
        .await?
    {
        Some(session) => Ok(session),
        None => {
            let _ = state.admin_auth_failures.check(client, Instant::now());
            Err(Error::Unauthorized.into())
        }
    }
}

/// Wraps an operation with path parameters (used as its `transform`) so that an unparsable one
/// is a 422 naming it as the document does: poem-openapi reports path parameters by position
/// (`param0`, …), so the name is looked up in the document by the matched route.
pub fn named_path_params(endpoint: impl Endpoint + 'static) -> impl Endpoint {
    endpoint.around(|endpoint, request| async move {
        let pattern = request.data::<PathPattern>().map(|p| p.0.clone());
        endpoint
            .call(request)
            .await
            .map(IntoResponse::into_response)
            .map_err(|error| {
                let renamed = error.downcast_ref::<ParsePathError>().and_then(|param| {
                    let name = path_param_name(pattern.as_deref()?, param.name)?;
                    Some(Error::invalid(name, human_reason(&param.reason)))
                });
                renamed.map_or(error, poem::Error::from)
            })
    })
}

/// 401 and 429: what every admin operation may answer after its own problems (and before
/// [`SERVER_FAULTS`](crate::api::openapi::operation_errors::SERVER_FAULTS)).
pub const ADMIN_AUTHENTICATION: &[DocumentedProblem] = &[
    DocumentedProblem::new(
        401,
        "Missing, malformed, unknown or revoked admin token (agent tokens are refused).",
    )
    .with_headers(&[CHALLENGE]),
    DocumentedProblem::new(
        429,
        "Too many failed authentications from this client address; retry after the given\n\
         seconds.",
    )
    .with_headers(&[RETRY_AFTER]),
];

/// 404 of the operations on one host.
pub const NO_SUCH_HOST: DocumentedProblem = DocumentedProblem::new(404, "No host has this id.");

/// 422 of the operations on one host that take no body.
pub const ID_NOT_AN_INTEGER: DocumentedProblem =
    DocumentedProblem::new(422, "The id is not an integer.");

/// 408 of the operations that read a body.
pub const BODY_LATE: DocumentedProblem =
    DocumentedProblem::new(408, "The body did not arrive within the configured time.");

/// 413 of the operations that read a body.
pub const BODY_TOO_LARGE: DocumentedProblem =
    DocumentedProblem::new(413, "The body exceeds the configured limit.");

/// 415 of the operations that read a body.
pub const NOT_APPLICATION_JSON: DocumentedProblem =
    DocumentedProblem::new(415, "The body is not `application/json`.");

/// 422 of the operations on one host that read a body.
pub const ID_OR_BODY_INVALID: DocumentedProblem = DocumentedProblem::new(
    422,
    "The id is not an integer or the body breaks the schema; `errors` names every\n\
     failing field.",
);
