//! RFC 9457 problem details: the one error body of the whole API.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;

use poem::error::ResponseError;

use crate::domain::FieldError;
use crate::error::Error;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An error, as `application/problem+json` (RFC 9457).
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Problem {
    /// Always `about:blank`: the status code says what kind of problem it is.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// The status code's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for a human.
    pub detail: String,
    /// Each failing field of the request (empty unless the status is 422).
    pub errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors,
        }
    }

    /// Renders a poem error raised outside this crate (unknown route, bad content type, …).
    pub fn from_foreign(error: &poem::Error) -> Self {
        Self::new(error.status(), error.to_string(), Vec::new())
    }
}

impl From<&Error> for Problem {
    fn from(error: &Error) -> Self {
        let errors = match error {
            Error::Validation(errors) => errors.clone(),
            _ => Vec::new(),
        };
        Self::new(error.status(), error.to_string(), errors)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        ProblemJson(self).into_response()
    }
}

/// Renders any error as problem details: errors of this crate render themselves; poem-openapi's
/// missing bearer becomes this crate's 401 (with `WWW-Authenticate`) and its unparsable path or
/// query parameter a 422 naming the parameter; the rest (unknown route, missing content type, …)
/// get the same shape with their own status.
pub fn error_response(error: poem::Error) -> Response {
    use poem_openapi::error::{AuthorizationError, ParseParamError, ParsePathError};
    if error.is::<Error>() {
        error.into_response()
    } else if error.is::<AuthorizationError>() {
        Error::Unauthorized.as_response()
    } else if let Some(param) = error.downcast_ref::<ParseParamError>() {
        Error::invalid(param.name, &param.reason).as_response()
    } else if let Some(param) = error.downcast_ref::<ParsePathError>() {
        Error::invalid(param.name, &param.reason).as_response()
    } else {
        Problem::from_foreign(&error).into_response()
    }
}

/// A [`Problem`] as a response payload, so endpoints document it with its media type.
pub struct ProblemJson(pub Problem);

impl Payload for ProblemJson {
    const CONTENT_TYPE: &'static str = PROBLEM_CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        Problem::schema_ref()
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl IntoResponse for ProblemJson {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Response::builder()
            .status(status)
            .content_type(PROBLEM_CONTENT_TYPE)
            .body(serde_json::to_vec(&self.0).expect("a problem always serialises"))
    }
}

/// The problem for an error the operation does not document: logged with its cause, answered
/// as a bare 500 so nothing internal reaches the client.
pub(crate) fn internal_problem(error: &Error) -> ProblemJson {
    match error {
        Error::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "internal error")
        }
        other => tracing::error!(error = %other, "error not documented for this operation"),
    }
    ProblemJson(Problem::from(&Error::Internal(anyhow::anyhow!(
        "undocumented"
    ))))
}

/// The problem of a 503, logged as a warning with its cause.
pub(crate) fn unavailable_problem(error: &Error) -> ProblemJson {
    if let Error::Unavailable(cause) = error {
        tracing::warn!(error = format!("{cause:#}"), "database unavailable");
    }
    ProblemJson(Problem::from(error))
}
