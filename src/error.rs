//! The crate's one error type: what went wrong, in the domain's and the store's terms.
//!
//! Store and domain code return `Result<_, Error>` and use `?`; which HTTP answer each error
//! gets is decided in one place, [`crate::api::errors::error_response`], which depends on this
//! module and not the reverse. A database failure is told apart here, by its SQLSTATE class.

use crate::domain::FieldError;

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
    /// `/readyz`'s refusal: what is not ready (the database unreachable, migrations pending),
    /// and the database's error when there is one.
    #[error("{detail}")]
    NotReady {
        detail: String,
        #[source]
        cause: Option<anyhow::Error>,
    },
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
