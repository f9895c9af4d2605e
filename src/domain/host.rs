//! Hosts as the admin API sees them: their lifecycle status, labels, and the parsing of list
//! filters and page cursors.

use std::collections::BTreeMap;

use poem_openapi::Object;
use serde::Deserialize;

use super::FieldError;
use crate::error::Error;

/// Free-form `key → value` labels of a host (bounds are on the API types that accept them); a
/// container's are `nexus_contract::Labels`, packed for speed.
pub type HostLabels = BTreeMap<String, String>;

/// Where a host is in its lifecycle. Agents move it between `pending`, `online`, `offline` and
/// `degraded`; only an operator archives it, and an archived host stays archived.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
    poem_openapi::Enum,
)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum HostStatus {
    /// Created; no snapshot received yet.
    Pending,
    /// Sending snapshots.
    Online,
    /// Stopped sending snapshots.
    Offline,
    /// Sending snapshots that report a problem.
    Degraded,
    /// Retired by an operator; its tokens are revoked.
    Archived,
}

impl HostStatus {
    /// The value stored in `hosts.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Degraded => "degraded",
            Self::Archived => "archived",
        }
    }

    /// Reads `hosts.status` (constrained by a CHECK to these values).
    pub fn from_db(value: &str) -> Self {
        match value {
            "online" => Self::Online,
            "offline" => Self::Offline,
            "degraded" => Self::Degraded,
            "archived" => Self::Archived,
            _ => Self::Pending,
        }
    }
}

impl std::fmt::Display for HostStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses label filters written `key:value` (split at the first colon) into the one object
/// that every matching host's labels must contain.
pub fn label_filter(field: &str, filters: &[String]) -> Result<HostLabels, Vec<FieldError>> {
    let mut wanted = HostLabels::new();
    let mut errors = Vec::new();
    for (index, filter) in filters.iter().enumerate() {
        match filter.split_once(':') {
            Some((key, value)) if !key.is_empty() && !filter.contains('\0') => {
                wanted.insert(key.to_owned(), value.to_owned());
            }
            _ => {
                let field = if filters.len() == 1 {
                    field.to_owned()
                } else {
                    format!("{field}.{index}")
                };
                errors.push(FieldError::new(
                    field,
                    "must be `key:value` with a non-empty key and no NUL character",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(wanted)
    } else {
        Err(errors)
    }
}

/// A Docker container id to filter by: not empty, and one PostgreSQL can hold.
pub fn container_id_filter(field: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    search_text(field, id).map(drop)
}

/// A text to search for, which PostgreSQL can hold (no NUL character).
pub fn search_text(field: &str, text: &str) -> Result<String, FieldError> {
    if text.contains('\0') {
        Err(FieldError::new(field, "must not contain NUL characters"))
    } else {
        Ok(text.to_owned())
    }
}

/// An opaque position in a list ordered by id: the id of the last item of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub i64);

impl Cursor {
    /// Parses a cursor this server handed out as `next_cursor`.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        text.strip_prefix("h")
            .and_then(|id| id.parse::<i64>().ok())
            .filter(|id| *id >= 0)
            .map(Self)
            .ok_or_else(|| FieldError::new(field, "is not a cursor returned by this API"))
    }

    pub fn encode(self) -> String {
        format!("h{}", self.0)
    }
}

/// A host to create.
#[derive(Debug, Clone, Object, Deserialize, serde::Serialize)]
#[oai(example)]
pub struct NewHost {
    /// Display name.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub name: String,
    /// Unique URL-safe identifier: lower-case letters and digits joined by single dashes
    /// (default: derived from the name).
    #[oai(validator(max_length = 255, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$"))]
    pub slug: Option<String>,
    /// Free-form labels (at most 64; keys and values at most 255 characters).
    #[oai(validator(max_properties = 64, max_length = 255))]
    pub labels: Option<HostLabels>,
}

impl poem_openapi::types::Example for NewHost {
    fn example() -> Self {
        Self {
            name: "web-01".into(),
            slug: Some("web-01".into()),
            labels: Some(HostLabels::from([("env".into(), "prod".into())])),
        }
    }
}

/// Changes to a host; absent fields stay as they are.
#[derive(Debug, Clone, Object, Deserialize, serde::Serialize)]
pub struct HostUpdate {
    /// New display name.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub name: Option<String>,
    /// New labels, replacing all current ones (at most 64; keys and values at most 255
    /// characters).
    #[oai(validator(max_properties = 64, max_length = 255))]
    pub labels: Option<HostLabels>,
}

/// Page size of list operations when `limit` is not given.
pub fn default_page_size() -> u32 {
    50
}

/// A page's position: the `next_cursor` of the previous page.
pub fn page_cursor(cursor: Option<&str>) -> Result<Option<Cursor>, Error> {
    cursor
        .map(|text| Cursor::parse("cursor", text))
        .transpose()
        .map_err(|error| Error::Validation(vec![error]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_filters_split_at_the_first_colon_and_combine() {
        let wanted = label_filter("label", &["env:prod".into(), "url:http://x".into()]).unwrap();
        assert_eq!(wanted["env"], "prod");
        assert_eq!(wanted["url"], "http://x");
        assert_eq!(label_filter("label", &["env:".into()]).unwrap()["env"], "");
    }

    #[test]
    fn malformed_label_filters_are_named_by_position() {
        let errors =
            label_filter("label", &["ok:1".into(), "nocolon".into(), ":v".into()]).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["label.1", "label.2"]);
        assert_eq!(
            label_filter("label", &["x".into()]).unwrap_err()[0].field,
            "label"
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        assert_eq!(
            Cursor::parse("cursor", &Cursor(42).encode()),
            Ok(Cursor(42))
        );
        for bad in ["42", "h", "h-1", "hx", ""] {
            assert!(Cursor::parse("cursor", bad).is_err(), "{bad}");
        }
    }
}
