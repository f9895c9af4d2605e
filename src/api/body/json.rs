//! `ValidJson<T>`: a JSON request body checked against the published schema of `T`.
//!
//! The body is read as [`read`] reads every body (size limit, gzip, read timeout); anything
//! that breaks the schema → 422 naming every failing field.

use poem::{Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::de::DeserializeOwned;

use super::read::{self, BodyLimits};
use crate::domain::schema_check::Schema;
use crate::error::Error;

pub struct ValidJson<T>(pub T);

impl<T: Type> Payload for ValidJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        read::is_json(content_type)
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
        let limits = *request
            .data::<BodyLimits>()
            .expect("BodyLimits is app data");
        let bytes = read::read_body(request, body, limits).await?;
        Ok(Self(parse(&bytes)?))
    }
}

impl_apirequest_for_payload!(ValidJson<T>, T: Type + DeserializeOwned + 'static);

/// Parses and checks a JSON document against the schema of `T` by the `Value` path: every
/// failing field, by path, in the schema's order. An empty body is a 400.
pub fn parse<T: Type + DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, Error> {
    let value = value_of(non_empty(bytes)?)?;
    let errors = Schema::of::<T>().check(&value);
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    // The schema check admits only what the type accepts; this is a safety net, not a path.
    serde_json::from_value(value).map_err(|error| Error::invalid("", error.to_string()))
}

/// The body, or a 400 when there is none.
pub fn non_empty(bytes: &[u8]) -> Result<&[u8], Error> {
    if bytes.is_empty() {
        return Err(Error::MalformedBody(
            "the request body is empty; a JSON object is expected".into(),
        ));
    }
    Ok(bytes)
}

/// The body as a JSON `Value` (400 when it is not JSON).
pub fn value_of(bytes: &[u8]) -> Result<serde_json::Value, Error> {
    serde_json::from_slice(bytes).map_err(|error| {
        Error::MalformedBody(format!("the request body is not valid JSON: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::host::NewHost;

    #[test]
    fn other_bodies_take_the_value_path_which_names_every_failing_field() {
        let long = "a".repeat(256);
        for (body, failing) in [
            (json!({"name": "web"}), vec![]),
            (json!({"name": "web", "slug": "web-01"}), vec![]),
            (json!({"name": "web", "slug": "Web 01"}), vec!["slug"]),
            (json!({"name": "", "slug": long}), vec!["name", "slug"]),
            (
                json!({"name": "web", "labels": {"k": long}}),
                vec!["labels.k"],
            ),
            (
                json!({"name": 5, "labels": {"k": 1}}),
                vec!["name", "labels.k"],
            ),
        ] {
            let bytes = serde_json::to_vec(&body).unwrap();
            let fields = match parse::<NewHost>(&bytes) {
                Ok(_) => vec![],
                Err(Error::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
                Err(other) => panic!("{body}: {other:?}"),
            };
            assert_eq!(fields, failing, "{body}");
        }
    }
}
