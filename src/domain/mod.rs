//! Validated domain types and the rules of ingestion. No I/O here: rules that need the clock take
//! `now` as an argument so they are testable without faking time.

pub mod alert_rule;
pub mod host;
pub mod liveness;
pub mod schema_check;
pub mod series;
pub mod snapshot;
pub mod token;
pub mod webhook;

use crate::error::Error;

/// One failing field of a request, named by its path (e.g. `containers.3.metrics.cpu_percent`).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, poem_openapi::Object,
)]
pub struct FieldError {
    /// Dotted path of the field; array items are named by their index.
    pub field: String,
    /// What is wrong with it, in plain words.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `request` checked against its published schema, as the admin API checks a body of its type:
/// the same bounds, field names and messages, however the request arrived (the CLI builds one
/// from its flags).
pub fn checked<T>(request: &T) -> Result<T, Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned + poem_openapi::types::Type + 'static,
{
    let value = serde_json::to_value(request).map_err(|error| Error::Internal(error.into()))?;
    let errors = schema_check::Schema::of::<T>().check(&value);
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    // The schema admits only what the type accepts; this is a safety net, not a path.
    serde_json::from_value(value).map_err(|error| Error::invalid("", error.to_string()))
}
