//! RFC 9457 problem details: the one error body of the whole API. Which error gets which
//! problem is decided in [`super::error_response`].

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;

use crate::domain::FieldError;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// What every problem `type` of this API starts with, followed by the problem's name
/// (`validation`, `host-not-found`, …; the README's API conventions list them). A tag URI
/// (RFC 4151): stable and comparable, and not a link that could break.
pub const PROBLEM_TYPE_PREFIX: &str = "tag:nexus-telemetry,2026:problem:";

/// An error, as `application/problem+json` (RFC 9457).
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(example)]
pub struct Problem {
    /// What kind of problem this is, for machines: `tag:nexus-telemetry,2026:problem:` and a
    /// name (see the README's API conventions), or `about:blank` for the HTTP-level errors that
    /// the status alone describes (unknown route, method not allowed).
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

    /// The same problem, typed `PROBLEM_TYPE_PREFIX` + `name`.
    pub fn typed(mut self, name: &str) -> Self {
        self.kind = format!("{PROBLEM_TYPE_PREFIX}{name}");
        self
    }

    /// Renders a poem error raised outside this crate (unknown route, bad content type, …).
    pub fn from_foreign(error: &poem::Error) -> Self {
        Self::new(error.status(), error.to_string(), Vec::new())
    }
}

/// A plain-words message for poem-openapi's reason why a path or query parameter did not
/// parse, which names its internal types (`failed to parse "integer_int64"`) and validators
/// (`minimum(1, exclusive: false)`); worded as the body checks word theirs (`payload::check`).
pub fn human_reason(reason: &str) -> String {
    if reason.ends_with("expects an input value.") {
        return "is required".into();
    }
    if let Some(rest) = reason.strip_prefix("verification failed. ") {
        let (rule, args) = rest.split_once('(').unwrap_or((rest, ""));
        let args = args.trim_end_matches(')');
        let (bound, exclusive) = args.split_once(", exclusive: ").unwrap_or((args, "false"));
        let exclusive = exclusive == "true";
        return match rule {
            "minimum" if exclusive => format!("must be greater than {bound}"),
            "minimum" => format!("must be at least {bound}"),
            "maximum" if exclusive => format!("must be less than {bound}"),
            "maximum" => format!("must be at most {bound}"),
            "minLength" => format!("must not be shorter than {bound} characters"),
            "maxLength" => format!("must not be longer than {bound} characters"),
            "pattern" => format!("must match the pattern {bound}"),
            _ => "is out of bounds".into(),
        };
    }
    let type_name = reason
        .strip_prefix("failed to parse \"")
        .and_then(|rest| rest.split_once('"'))
        .map(|(name, _)| name);
    match type_name {
        Some(name) if name.starts_with("integer") => "must be an integer".into(),
        Some(name) if name.starts_with("number") => "must be a number".into(),
        Some("boolean") => "must be `true` or `false`".into(),
        Some("string_date-time") => {
            "must be an RFC 3339 timestamp with offset, e.g. 2024-05-01T12:00:00Z".into()
        }
        Some(_) => "is not one of the documented values".into(),
        None => "is malformed".into(),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        ProblemJson(self).into_response()
    }
}

/// Gives a problem the media type `application/json` when the client accepts that and not
/// `application/problem+json` (generated clients send `Accept: application/json`); the body
/// is the same. Both media types are documented for every error.
pub fn negotiate(accept: Option<&str>, response: &mut Response) {
    let is_problem = response
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .is_some_and(|value| value == PROBLEM_CONTENT_TYPE);
    let accept = accept.unwrap_or_default().to_ascii_lowercase();
    if is_problem && accept.contains("application/json") && !accept.contains("problem+json") {
        response.headers_mut().insert(
            poem::http::header::CONTENT_TYPE,
            poem::http::HeaderValue::from_static("application/json"),
        );
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

#[cfg(test)]
mod tests {
    use super::human_reason;

    #[test]
    fn poem_openapi_reasons_become_plain_words() {
        let cases = [
            (
                r#"Type "string_date-time" expects an input value."#,
                "is required",
            ),
            (
                r#"failed to parse "integer_int64": invalid digit found in string"#,
                "must be an integer",
            ),
            (
                r#"failed to parse "string_date-time": premature end of input"#,
                "must be an RFC 3339 timestamp with offset, e.g. 2024-05-01T12:00:00Z",
            ),
            (
                "verification failed. minimum(1, exclusive: false)",
                "must be at least 1",
            ),
            (
                "verification failed. maximum(200, exclusive: false)",
                "must be at most 200",
            ),
            (
                "verification failed. maxLength(32)",
                "must not be longer than 32 characters",
            ),
            (
                r#"failed to parse "HostStatus": Expect a valid enumeration value."#,
                "is not one of the documented values",
            ),
        ];
        for (reason, expected) in cases {
            assert_eq!(human_reason(reason), expected, "{reason}");
        }
    }
}
