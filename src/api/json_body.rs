//! `ValidJson<T>`: a JSON request body checked against the published schema of `T`.
//!
//! Errors follow the contract: a body over the limit → 413 (refused from `Content-Length`
//! before reading, or as soon as the stream passes the limit), not JSON → 400, anything that
//! breaks the schema → 422 naming every failing field.

use poem::{Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::de::DeserializeOwned;

use crate::domain::schema_check::Schema;
use crate::error::Error;

/// Largest request body accepted, in bytes; provided as request data by the app.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

pub struct ValidJson<T>(pub T);

impl<T: Type> Payload for ValidJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned + 'static> ParsePayload for ValidJson<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let BodyLimit(limit) = *request.data::<BodyLimit>().expect("BodyLimit is app data");
        let declared = request
            .header("Content-Length")
            .and_then(|length| length.parse::<usize>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(Error::PayloadTooLarge { limit }.into());
        }
        let bytes = body
            .take()?
            .into_bytes_limit(limit)
            .await
            .map_err(|error| match error {
                poem::error::ReadBodyError::PayloadTooLarge => Error::PayloadTooLarge { limit },
                other => Error::MalformedBody(format!("could not read the request body: {other}")),
            })?;
        Ok(Self(parse(&bytes)?))
    }
}

impl_apirequest_for_payload!(ValidJson<T>, T: Type + DeserializeOwned + 'static);

/// Parses and checks a JSON document against the schema of `T`.
pub fn parse<T: Type + DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.is_empty() {
        return Err(Error::MalformedBody(
            "the request body is empty; a JSON object is expected".into(),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        Error::MalformedBody(format!("the request body is not valid JSON: {error}"))
    })?;
    let errors = Schema::of::<T>().check(&value);
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    // The schema check admits only what the type accepts; this is a safety net, not a path.
    serde_json::from_value(value).map_err(|error| Error::invalid("", error.to_string()))
}
