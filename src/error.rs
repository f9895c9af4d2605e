//! The crate's one error type, and the one place that maps it to HTTP statuses.
//!
//! Handlers and middleware return `Result<_, Error>` and use `?`; poem renders the error through
//! [`ResponseError`] as RFC 9457 problem details. Internal causes are logged with their chain and
//! never sent to clients.

use poem::http::StatusCode;
use poem::{IntoResponse, Response, error::ResponseError};

use crate::api::problem::Problem;
use crate::domain::FieldError;

/// Seconds a client should wait before retrying after the database was unavailable.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// `WWW-Authenticate` challenge sent with every 401.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"nexus-telemetry\"";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("rate limit of {limit} requests per minute exceeded; retry in {retry_after_secs} s")]
    RateLimited { limit: u32, retry_after_secs: u64 },
    #[error("too many failed authentications from this address; retry in {retry_after_secs} s")]
    AuthFailuresLimited { retry_after_secs: u64 },
    #[error("{0}")]
    MalformedBody(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    #[error("the request does not satisfy the contract")]
    Validation(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A state conflict: its problem type (`slug-taken`, …) and what happened.
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("the database is unavailable, retry later")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The address limiter's refusal, told apart from a token's quota by its problem type.
    pub fn from_auth_failures(self) -> Self {
        match self {
            Error::RateLimited {
                retry_after_secs, ..
            } => Error::AuthFailuresLimited { retry_after_secs },
            other => other,
        }
    }

    /// Seconds a client should wait before retrying, for the errors that say so.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::RateLimited {
                retry_after_secs, ..
            }
            | Error::AuthFailuresLimited { retry_after_secs } => Some(*retry_after_secs),
            Error::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

impl ResponseError for Error {
    fn status(&self) -> StatusCode {
        match self {
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::RateLimited { .. } | Error::AuthFailuresLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::MalformedBody(_) => StatusCode::BAD_REQUEST,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(..) => StatusCode::CONFLICT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn as_response(&self) -> Response {
        match self {
            Error::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "database unavailable")
            }
            Error::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error")
            }
            _ => {}
        }
        let mut response = Problem::from(self).into_response();
        let headers = response.headers_mut();
        if let Error::Unauthorized = self {
            headers.insert(
                "WWW-Authenticate",
                BEARER_CHALLENGE.parse().expect("static header"),
            );
        }
        if let Some(seconds) = self.retry_after_secs() {
            headers.insert("Retry-After", seconds.into());
        }
        response
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        use std::error::Error as _;
        // Lost or refused connections and server shutdowns are the database being away; any
        // other failure (bad SQL, serialisation, constraint) is a fault of ours.
        let io = error
            .source()
            .is_some_and(|source| source.is::<std::io::Error>());
        let code = error.code().map(|code| code.code());
        let away = code.is_some_and(|code| code.starts_with("08") || code.starts_with("57P"));
        if error.is_closed() || io || away {
            Error::Unavailable(error.into())
        } else {
            Error::Internal(error.into())
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => Error::Unavailable(other.into()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
