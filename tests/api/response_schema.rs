//! Response conformance: the JSON an operation answers must be what the document declares for
//! its status and media type (every required key present, `null` only where nullable, no key
//! the schema does not name, types, formats, enums and bounds). A small validator of the
//! OpenAPI 3.0 subset the document uses; `helpers::call` runs it on every admin API answer the
//! suite gets and `TestApp::post_telemetry` on every telemetry answer, so each test that talks
//! to the API also checks the document against the server.

use std::sync::OnceLock;

use serde_json::Value;

fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_yaml::from_str(include_str!("../../openapi/openapi.yaml"))
            .expect("the committed document is YAML")
    })
}

/// `value`, or what its `$ref` points at.
fn resolve(value: &Value) -> &Value {
    match value["$ref"].as_str() {
        Some(reference) => reference
            .trim_start_matches("#/")
            .split('/')
            .fold(document(), |node, key| &node[key]),
        None => value,
    }
}

/// The document's path template that `path` (query stripped) is an instance of.
fn template_of(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .find(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part == segment || part.starts_with('{'))
        })
        .map(String::as_str)
}

/// Every way the answer of `method path` with `status` breaks the document; empty when it
/// conforms. A route the document does not describe (an unknown path, a method not allowed)
/// is not an operation and is not checked.
pub fn violations(
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &Value,
) -> Vec<String> {
    let Some(template) = template_of(path) else {
        return Vec::new();
    };
    let operation = &document()["paths"][template][method.to_ascii_lowercase()];
    if operation.is_null() {
        return Vec::new();
    }
    let what = format!("{method} {template} {status}");
    let Some(response) = operation["responses"].get(status.to_string()) else {
        return vec![format!("{what}: the status is not documented")];
    };
    let content = &resolve(response)["content"];
    let Some(media_types) = content.as_object() else {
        return match body {
            Value::Null => Vec::new(),
            _ => vec![format!("{what}: a body where none is documented: {body}")],
        };
    };
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    let Some(media) = media_types.get(media_type) else {
        return vec![format!(
            "{what}: media type {media_type:?} is not documented"
        )];
    };
    let mut found = Vec::new();
    check(&media["schema"], body, &what, &mut found);
    found
}

/// Every way `value` breaks the document's schema `components/schemas/{name}` (such as a
/// webhook's body, `WebhookEvent`, published under `x-webhooks`); empty when it conforms.
pub fn schema_violations(name: &str, value: &Value) -> Vec<String> {
    let schema = &document()["components"]["schemas"][name];
    assert!(schema.is_object(), "the document has no schema {name}");
    let mut found = Vec::new();
    check(schema, value, name, &mut found);
    found
}

fn check(schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    if schema.get("$ref").is_some() {
        return check(resolve(schema), value, at, found);
    }
    if value.is_null() {
        if schema["nullable"] != Value::Bool(true) {
            found.push(format!("{at}: null, and the schema is not nullable"));
        }
        return;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        check(part, value, at, found);
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        found.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let Some(ty) = schema["type"].as_str() else {
        return;
    };
    let fits = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !fits {
        found.push(format!("{at}: {value} is not of type {ty}"));
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap_or_default();
                if !map.contains_key(key) {
                    found.push(format!("{at}: the required key `{key}` is absent"));
                }
            }
            for (key, child) in map {
                let at = format!("{at}.{key}");
                match (
                    properties.and_then(|p| p.get(key)),
                    &schema["additionalProperties"],
                ) {
                    (Some(property), _) => check(property, child, &at, found),
                    (None, Value::Object(_)) => {
                        check(&schema["additionalProperties"], child, &at, found)
                    }
                    (None, Value::Bool(true)) => {}
                    (None, _) if properties.is_none() => {}
                    (None, _) => found.push(format!("{at}: a key the schema does not name")),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{at}.{i}"), found);
            }
        }
        Value::String(text) => {
            if schema["format"] == "date-time"
                && chrono::DateTime::parse_from_rfc3339(text).is_err()
            {
                found.push(format!("{at}: {text:?} is not an RFC 3339 timestamp"));
            }
            let length = text.chars().count() as u64;
            if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
                found.push(format!("{at}: {text:?} is longer than maxLength"));
            }
            if schema["minLength"].as_u64().is_some_and(|min| length < min) {
                found.push(format!("{at}: {text:?} is shorter than minLength"));
            }
        }
        Value::Number(number) => {
            let number = number.as_f64().unwrap_or_default();
            if schema["minimum"].as_f64().is_some_and(|min| number < min) {
                found.push(format!("{at}: {number} is below the minimum"));
            }
            if schema["maximum"].as_f64().is_some_and(|max| number > max) {
                found.push(format!("{at}: {number} is above the maximum"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::violations;

    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    fn summary(line: serde_json::Value) -> serde_json::Value {
        json!({
            "since": "2026-12-07T10:00:00Z",
            "until": "2026-12-07T11:00:00Z",
            "items": [line],
            "untallied": 0,
        })
    }

    #[test]
    fn an_answer_that_leaves_out_a_required_key_does_not_conform() {
        let line = json!({
            "address": "192.0.2.1", "reason": "invalid", "count": 1,
            "last_at": "2026-12-07T10:30:00Z",
        });
        let found = violations("GET", "/api/v1/auth-failures", 200, JSON, &summary(line));
        assert_eq!(
            found,
            ["GET /api/v1/auth-failures 200.items.0: the required key `last_token_id` is absent"]
        );
        let line = json!({
            "address": "192.0.2.1", "reason": "invalid", "count": 1,
            "last_at": "2026-12-07T10:30:00Z", "last_token_id": null,
        });
        let found = violations("GET", "/api/v1/auth-failures", 200, JSON, &summary(line));
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn nulls_types_formats_enums_undocumented_keys_and_statuses_are_each_caught() {
        let problem = |body: serde_json::Value| {
            violations(
                "GET",
                "/api/v1/hosts/7",
                404,
                Some("application/problem+json"),
                &body,
            )
        };
        let good = json!({
            "type": "tag:nexus-telemetry,2026:problem:host-not-found", "title": "Not Found",
            "status": 404, "detail": "no such host", "errors": [],
        });
        assert_eq!(problem(good.clone()), Vec::<String>::new());
        let mut bad = good.clone();
        bad["detail"] = json!(null);
        bad["status"] = json!("404");
        bad["extra"] = json!(1);
        assert_eq!(problem(bad).len(), 3, "null, type and an undocumented key");
        let host_list = violations(
            "GET",
            "/api/v1/hosts?limit=2",
            200,
            JSON,
            &json!({
                "items": [{"status": "sleeping"}], "next_cursor": "x",
            }),
        );
        assert!(
            host_list.iter().any(|v| v.contains("is not one of")),
            "{host_list:?}"
        );
        assert!(
            host_list
                .iter()
                .any(|v| v.contains("`created_at` is absent")),
            "{host_list:?}"
        );
        assert_eq!(
            violations("GET", "/api/v1/hosts", 418, JSON, &good),
            ["GET /api/v1/hosts 418: the status is not documented"]
        );
        assert_eq!(
            violations("GET", "/api/v1/no-such-route", 404, JSON, &good),
            Vec::<String>::new(),
            "not an operation"
        );
    }
}
