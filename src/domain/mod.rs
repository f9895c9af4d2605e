//! Validated domain types and the rules of ingestion. No I/O here: rules that need the clock take
//! `now` as an argument so they are testable without faking time.

pub mod alert_rule;
pub mod host;
pub mod liveness;
pub mod series;
pub mod snapshot;
pub mod token;
pub mod webhook;

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
