//! Each operation: its security, media types, event streams, error bodies and headers.

use serde_yaml::{Mapping, Value};

use super::{JSON, PROBLEM_JSON, yaml};

pub(super) fn for_each_operation(doc: &mut Value, mut visit: impl FnMut(&str, &mut Value)) {
    let Some(paths) = doc["paths"].as_mapping_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let path = path.as_str().unwrap_or_default().to_owned();
        if let Some(item) = item.as_mapping_mut() {
            for (_, operation) in item.iter_mut() {
                visit(&path, operation);
            }
        }
    }
}

/// Redocly's `security-defined`: an operation without a scheme must say it is public.
pub(super) fn public_operations_say_so(operation: &mut Value) {
    if let Some(operation) = operation.as_mapping_mut()
        && !operation.contains_key("security")
    {
        operation.insert("security".into(), Value::Sequence(Vec::new()));
    }
}

/// `application/json; charset=utf-8` is what poem sends, but openapi-typescript's helpers only
/// find bodies under the bare media type (JSON is UTF-8 by definition, RFC 8259).
pub(super) fn plain_media_types(operation: &mut Value) {
    for content in contents(operation) {
        let renamed: Mapping = std::mem::take(content)
            .into_iter()
            .map(|(key, value)| {
                let bare = key
                    .as_str()
                    .and_then(|k| k.split(';').next())
                    .map(|k| Value::from(k.trim()));
                (bare.unwrap_or(key), value)
            })
            .collect();
        *content = renamed;
    }
}

/// Server-Sent Events are text; poem-openapi describes them as an array of format
/// `event-stream`, which no generator knows. OpenAPI 3.0 cannot type the messages of a stream,
/// so the schema says text and names the schema of each message's `data`.
pub(super) fn event_streams_as_text(operation: &mut Value) {
    for content in contents(operation) {
        if let Some(media) = content.get_mut("text/event-stream") {
            let data = media["schema"]["items"]["$ref"]
                .as_str()
                .and_then(|reference| reference.rsplit('/').next())
                .unwrap_or("object")
                .to_owned();
            media["schema"] = yaml(serde_json::json!({
                "type": "string",
                "description": format!(
                    "Server-Sent Events (text/event-stream): messages of lines `id: <event id>`, \
                     `event: <kind>`, `data: <one {data} as JSON>`, then a blank line; comment \
                     lines (`:`) are heartbeats."
                ),
            }));
        }
    }
}

/// Errors are served as `application/problem+json` (RFC 9457), or as `application/json` to a
/// client that accepts only that ([`crate::api::errors::problem::negotiate`]); progenitor and
/// openapi-fetch type only the latter, so both keys are documented.
pub(super) fn errors_also_keyed_as_json(operation: &mut Value) {
    for content in contents(operation) {
        if let Some(media) = content.get(PROBLEM_JSON).cloned()
            && !content.contains_key(JSON)
        {
            content.insert(JSON.into(), media);
        }
    }
}

fn contents(operation: &mut Value) -> Vec<&mut Mapping> {
    let mut found = Vec::new();
    let Some(operation) = operation.as_mapping_mut() else {
        return found;
    };
    for (key, value) in operation.iter_mut() {
        match key.as_str() {
            Some("requestBody") => found.extend(value["content"].as_mapping_mut()),
            Some("responses") => {
                if let Some(responses) = value.as_mapping_mut() {
                    for (_, response) in responses.iter_mut() {
                        found.extend(response.get_mut("content").and_then(Value::as_mapping_mut));
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// HTTP header names are case-insensitive; poem-openapi upper-cases them, generators keep the
/// case they find. And every response carries the request id ([`crate::http::request_log`]).
pub(super) fn headers_lower_case_and_request_id(operation: &mut Value) {
    let Some(responses) = operation["responses"].as_mapping_mut() else {
        return;
    };
    for (_, response) in responses.iter_mut() {
        let Some(response) = response.as_mapping_mut() else {
            continue;
        };
        let headers = response
            .remove("headers")
            .and_then(|headers| match headers {
                Value::Mapping(headers) => Some(headers),
                _ => None,
            })
            .unwrap_or_default();
        let mut lowered: Mapping = headers
            .into_iter()
            .map(|(name, header)| {
                let name = name.as_str().map(str::to_ascii_lowercase).map(Value::from);
                (name.unwrap_or_default(), header)
            })
            .collect();
        lowered.insert(
            "x-request-id".into(),
            yaml(serde_json::json!({"$ref": "#/components/headers/RequestId"})),
        );
        response.insert("headers".into(), Value::Mapping(lowered));
    }
}

pub(super) fn request_id_header() -> serde_json::Value {
    serde_json::json!({
        "description": "The request's id, also in the server's log line for it: the client's \
            own `X-Request-Id` when it sent one of 1-64 visible ASCII characters, else a new one.",
        "required": true,
        "schema": {"type": "string", "maxLength": 64, "example": "4b1d3c0e9f8a4d2b8e6f0a1c2d3e4f50"},
    })
}
