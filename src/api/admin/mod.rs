//! The admin API under `/api/v1`: hosts and their agent tokens, for operators and integrators.
//!
//! Every operation takes an [`AdminToken`]: obtaining it is the check (an admin token, `nxk_…`,
//! unrevoked; agent tokens are refused). Answers are declared per operation with
//! [`admin_response!`], which also maps the crate's [`Error`] onto them, once for all.

pub mod auth_failures;
pub mod hosts;
pub mod readings;
pub mod tokens;

use poem::PathPattern;
use poem::{Endpoint, EndpointExt, IntoResponse, Request};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use poem_openapi::error::ParsePathError;

use std::time::Instant;

use super::AppState;
use super::agent_auth::client_address;
use super::document::path_param_name;
use super::problem::human_reason;
use crate::domain::token::TokenHash;
use crate::error::Error;
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
    let state = request.data::<AppState>().expect("AppState is app data");
    let client = client_address(request, &state.trusted_proxies);
    state
        .admin_auth_failures
        .peek(client, Instant::now())
        .map_err(Error::from_auth_failures)?;
    match state
        .store
        .authenticate_admin(&TokenHash::of(&bearer.token))
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

/// Page size of list operations when `limit` is not given.
pub fn default_page_size() -> u32 {
    50
}

/// Declares an admin operation's `ApiResponse` enum: its success variants, the problem
/// variants it may answer with (`Name = status`), and the ones every admin operation may
/// answer with (401 with `WWW-Authenticate`, 429 and 503 with `Retry-After`, 500); and maps
/// [`Error`] onto them by status. An error whose status the operation does not declare is a 500.
macro_rules! admin_response {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$success_meta:meta])* $success:ident $(($payload:ty))?, )*
        }
        problems {
            $( $(#[$problem_meta:meta])* $problem:ident = $status:tt, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(poem_openapi::ApiResponse)]
        pub enum $name {
            $( $(#[$success_meta])* $success $(($payload))?, )*
            $(
                $(#[$problem_meta])*
                #[oai(status = $status)]
                $problem($crate::api::problem::ProblemJson),
            )*
            /// Missing, malformed, unknown or revoked admin token (agent tokens are refused).
            #[oai(status = 401)]
            Unauthorized(
                $crate::api::problem::ProblemJson,
                #[oai(header = "WWW-Authenticate")] String,
            ),
            /// Too many failed authentications from this client address; retry after the given
            /// seconds.
            #[oai(status = 429)]
            TooManyRequests(
                $crate::api::problem::ProblemJson,
                #[oai(header = "Retry-After")] u64,
            ),
            /// An unexpected server fault; nothing was changed.
            #[oai(status = 500)]
            InternalError($crate::api::problem::ProblemJson),
            /// The database is unreachable; nothing was changed. Retry after the given seconds.
            #[oai(status = 503)]
            Unavailable(
                $crate::api::problem::ProblemJson,
                #[oai(header = "Retry-After")] u64,
            ),
        }

        impl From<$crate::error::Error> for $name {
            fn from(error: $crate::error::Error) -> Self {
                use poem::error::ResponseError;
                let problem =
                    || $crate::api::problem::ProblemJson($crate::api::problem::Problem::from(&error));
                match error.status().as_u16() {
                    401 => Self::Unauthorized(problem(), $crate::error::BEARER_CHALLENGE.into()),
                    429 => Self::TooManyRequests(problem(), error.retry_after_secs().unwrap_or(1)),
                    503 => Self::Unavailable(
                        $crate::api::problem::unavailable_problem(&error),
                        $crate::error::UNAVAILABLE_RETRY_AFTER_SECS,
                    ),
                    $( $status => Self::$problem(problem()), )*
                    _ => Self::InternalError($crate::api::problem::internal_problem(&error)),
                }
            }
        }
    };
}
pub(crate) use admin_response;
