//! The one mapping from the crate's [`Error`] to an HTTP answer: status, problem details and
//! headers ([`answer`]). Every error reaches the client through it, whether an operation
//! returns it ([`crate::api::openapi::operation_errors`]) or middleware and body parsing raise it (through
//! poem's [`ResponseError`]). The cause of a server fault is logged here, once, with its chain,
//! and never sent.

use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};

use super::problem::{Problem, ProblemJson, human_reason};
use crate::error::Error;

/// Seconds a client should wait before retrying after the database was unavailable (or the
/// service not ready).
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// `WWW-Authenticate` challenge sent with every 401.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"nexus-telemetry\"";

/// An error as the client receives it.
#[derive(Debug, Clone)]
pub struct Answer {
    problem: Problem,
    /// Sends `WWW-Authenticate` (a 401).
    challenge: bool,
    /// Sends `Retry-After`, in seconds (a 429 or 503).
    retry_after_secs: Option<u64>,
}

/// What the client gets for `error`. `documented` tells whether the operation answering
/// documents a status; an error whose status it does not is answered as a bare 500 (and logged
/// as such), so that nothing undocumented, nor internal, reaches the client.
pub fn answer(error: &Error, documented: impl Fn(StatusCode) -> bool) -> Answer {
    let status = status(error);
    if !documented(status) {
        tracing::error!(error = %error, "error not documented for this operation");
        return plain(&Error::Internal(anyhow::anyhow!("undocumented")));
    }
    match error {
        Error::Unavailable(cause) => {
            tracing::warn!(error = format!("{cause:#}"), "database unavailable")
        }
        Error::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
        Error::NotReady {
            cause: Some(cause), ..
        } => tracing::warn!(error = format!("{cause:#}"), "not ready"),
        _ => {}
    }
    plain(error)
}

/// The answer to `error`, logging nothing.
fn plain(error: &Error) -> Answer {
    let errors = match error {
        Error::Validation(errors) => errors.clone(),
        _ => Vec::new(),
    };
    let retry_after_secs = match error {
        Error::RateLimited {
            retry_after_secs, ..
        }
        | Error::AuthFailuresLimited { retry_after_secs } => Some(*retry_after_secs),
        Error::Unavailable(_) | Error::NotReady { .. } => Some(UNAVAILABLE_RETRY_AFTER_SECS),
        _ => None,
    };
    Answer {
        problem: Problem::new(status(error), error.to_string(), errors).typed(&problem_name(error)),
        challenge: matches!(error, Error::Unauthorized),
        retry_after_secs,
    }
}

fn status(error: &Error) -> StatusCode {
    match error {
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
        Error::Unavailable(_) | Error::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The name in an error's problem `type`: one per kind of problem a client may act on.
fn problem_name(error: &Error) -> String {
    match error {
        Error::Unauthorized => "unauthorized".into(),
        Error::RateLimited { .. } => "rate-limited".into(),
        Error::AuthFailuresLimited { .. } => "auth-failures-limited".into(),
        Error::MalformedBody(_) => "malformed-body".into(),
        Error::UnsupportedMediaType(_) => "unsupported-media-type".into(),
        Error::PayloadTooLarge { .. } => "payload-too-large".into(),
        Error::BodyTimeout(_) => "body-timeout".into(),
        Error::Validation(_) => "validation".into(),
        Error::NotFound(what) => format!("{}-not-found", what.replace(' ', "-")),
        Error::Conflict(name, _) => (*name).into(),
        Error::Unavailable(_) => "unavailable".into(),
        Error::NotReady { .. } => "not-ready".into(),
        Error::Internal(_) => "internal".into(),
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = ProblemJson(self.problem).into_response();
        let headers = response.headers_mut();
        if self.challenge {
            headers.insert(
                "WWW-Authenticate",
                BEARER_CHALLENGE.parse().expect("static header"),
            );
        }
        if let Some(seconds) = self.retry_after_secs {
            headers.insert("Retry-After", seconds.into());
        }
        response
    }
}

/// How poem renders the crate's error when middleware or body parsing raises it: every
/// status is theirs to answer with.
impl ResponseError for Error {
    fn status(&self) -> StatusCode {
        status(self)
    }

    fn as_response(&self) -> Response {
        answer(self, |_| true).into_response()
    }
}

/// Renders any error as problem details: the crate's errors and operations' answers as they
/// are; poem-openapi's missing bearer as this crate's 401 (with `WWW-Authenticate`) and its
/// unparsable path or query parameter as a 422 naming the parameter; the rest (unknown route,
/// missing content type, …) in the same shape with their own status.
pub fn render(error: poem::Error) -> Response {
    if error.is::<Error>() || error.is_from_response() {
        return error.into_response();
    }
    match as_crate_error(&error) {
        Some(ours) => answer(&ours, |_| true).into_response(),
        None => Problem::from_foreign(&error).into_response(),
    }
}

/// The crate's error for a poem-openapi error that has one.
fn as_crate_error(error: &poem::Error) -> Option<Error> {
    use poem_openapi::error::{AuthorizationError, ParseParamError, ParsePathError};
    if error.is::<AuthorizationError>() {
        return Some(Error::Unauthorized);
    }
    let (name, reason) = match error.downcast_ref::<ParseParamError>() {
        Some(param) => (param.name, &param.reason),
        None => {
            let param = error.downcast_ref::<ParsePathError>()?;
            (param.name, &param.reason)
        }
    };
    Some(Error::invalid(name, human_reason(reason)))
}

/// The example of the problem schema in the document: a real answer.
impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        let error = Error::invalid("containers.3.metrics.cpu_percent", "must be at most 100");
        plain(&error).problem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::errors::problem::PROBLEM_TYPE_PREFIX;

    fn header(response: &Response, name: &str) -> Option<String> {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    }

    #[test]
    fn each_error_gets_its_status_problem_type_and_headers() {
        let cases = [
            (
                Error::Unauthorized,
                401,
                "unauthorized",
                Some(BEARER_CHALLENGE),
                None,
            ),
            (
                Error::RateLimited {
                    limit: 60,
                    retry_after_secs: 7,
                },
                429,
                "rate-limited",
                None,
                Some("7"),
            ),
            (
                Error::AuthFailuresLimited {
                    retry_after_secs: 3,
                },
                429,
                "auth-failures-limited",
                None,
                Some("3"),
            ),
            (Error::NotFound("host"), 404, "host-not-found", None, None),
            (
                Error::Conflict("slug-taken", "taken".into()),
                409,
                "slug-taken",
                None,
                None,
            ),
            (
                Error::Unavailable(anyhow::anyhow!("connection refused")),
                503,
                "unavailable",
                None,
                Some("5"),
            ),
            (
                Error::NotReady {
                    detail: "migrations pending".into(),
                    cause: None,
                },
                503,
                "not-ready",
                None,
                Some("5"),
            ),
        ];
        for (error, status, name, challenge, retry_after) in cases {
            let response = answer(&error, |_| true).into_response();
            assert_eq!(response.status().as_u16(), status, "{error}");
            assert_eq!(
                header(&response, "Content-Type").as_deref(),
                Some("application/problem+json"),
                "{error}"
            );
            assert_eq!(
                plain(&error).problem.kind,
                format!("{PROBLEM_TYPE_PREFIX}{name}"),
                "{error}"
            );
            assert_eq!(
                header(&response, "WWW-Authenticate").as_deref(),
                challenge,
                "{error}"
            );
            assert_eq!(
                header(&response, "Retry-After").as_deref(),
                retry_after,
                "{error}"
            );
        }
    }

    #[test]
    fn an_internal_cause_never_reaches_the_client() {
        let error = Error::Internal(anyhow::anyhow!("password authentication failed for pg"));
        let problem = answer(&error, |_| true).problem;
        assert_eq!(problem.status, 500);
        assert_eq!(problem.detail, "internal error");
        assert!(!format!("{problem:?}").contains("password"));
    }

    #[test]
    fn a_status_the_operation_does_not_document_is_answered_as_a_bare_500() {
        let problem = answer(&Error::NotFound("host"), |status| status != 404).problem;
        assert_eq!(
            (problem.status, problem.detail.as_str()),
            (500, "internal error")
        );
        assert!(problem.kind.ends_with(":internal"), "{}", problem.kind);
    }

    #[test]
    fn validation_errors_name_each_field() {
        let error = Error::Validation(vec![
            crate::domain::FieldError::new("recorded_at", "is required"),
            crate::domain::FieldError::new("host", "is required"),
        ]);
        let problem = answer(&error, |_| true).problem;
        assert_eq!(problem.status, 422);
        let fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["recorded_at", "host"]);
    }
}
