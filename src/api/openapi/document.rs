//! The OpenAPI document: poem-openapi's output plus the rewrites that make clients generated
//! from it clean. It is built here once and only here, so the committed file, the served
//! document and the docs page are the same text; each rewrite says which generator it serves.

use std::sync::OnceLock;

use poem::web::Html;
use poem::{EndpointExt, IntoResponse, Route, get, handler};
use serde_yaml::{Mapping, Value};

/// The document, rendered both ways.
pub struct Document {
    pub yaml: String,
    pub json: String,
    /// Its path templates (`/api/v1/hosts/{host_id}`), to name path parameters in errors.
    paths: Vec<String>,
}

/// The document, built on first use.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc: Value = serde_yaml::from_str(&crate::api::openapi().spec_yaml())
            .expect("poem-openapi emits YAML");
        rewrite(&mut doc);
        let paths = doc["paths"]
            .as_mapping()
            .into_iter()
            .flat_map(Mapping::keys)
            .filter_map(|path| path.as_str().map(str::to_owned))
            .collect();
        Document {
            paths,
            yaml: serde_yaml::to_string(&doc).expect("a YAML value serialises"),
            json: serde_json::to_string_pretty(&doc).expect("a YAML value of strings serialises"),
        }
    })
}

/// `/openapi.json`, `/openapi.yaml` and the interactive docs at `/docs`, all from [`document`].
pub fn routes() -> Route {
    #[handler]
    fn json() -> impl IntoResponse {
        document()
            .json
            .clone()
            .with_content_type("application/json")
    }
    #[handler]
    fn yaml() -> impl IntoResponse {
        document()
            .yaml
            .clone()
            .with_content_type("application/x-yaml")
    }
    // poem-openapi's docs page embeds its own document; ours replaces it, byte for byte.
    let service = crate::api::openapi();
    let page = service
        .swagger_ui_html()
        .replace(&service.spec(), &document().json);
    let docs = get(poem::endpoint::make_sync(move |_| Html(page.clone()))).with(
        poem::middleware::SetHeader::new()
            .overriding("X-Content-Type-Options", "nosniff")
            .overriding("X-Frame-Options", "DENY")
            .overriding("Referrer-Policy", "no-referrer"),
    );
    Route::new()
        .at("/openapi.json", get(json))
        .at("/openapi.yaml", get(yaml))
        .at("/docs", docs.map_to_response())
}

/// The document's name for path parameter `param` (poem-openapi's `param0`, `param1`, …) of
/// the route poem matched as `pattern` (`/api/v1/hosts/:param0/tokens/:param1`), so that a 422
/// names it as the document does.
pub fn path_param_name(pattern: &str, param: &str) -> Option<String> {
    let position: usize = param.strip_prefix("param")?.parse().ok()?;
    let shape: Vec<&str> = pattern.split('/').collect();
    let template = document().paths.iter().find(|path| {
        let segments: Vec<&str> = path.split('/').collect();
        segments.len() == shape.len()
            && segments.iter().zip(&shape).all(|(segment, matched)| {
                segment == matched || (segment.starts_with('{') && matched.starts_with(':'))
            })
    })?;
    let name = template
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .nth(position)?;
    Some(name.to_owned())
}

use crate::api::errors::problem::PROBLEM_CONTENT_TYPE as PROBLEM_JSON;
const JSON: &str = "application/json";

fn rewrite(doc: &mut Value) {
    describe_webhooks(doc);
    let (response_only, request_only) = one_way_schemas(doc);
    for_each_operation(doc, |_, operation| {
        public_operations_say_so(operation);
        plain_media_types(operation);
        event_streams_as_text(operation);
        errors_also_keyed_as_json(operation);
        headers_lower_case_and_request_id(operation);
    });
    name_path_params_after_their_collection(doc);
    strip_defaults(doc);
    standard_integer_formats(doc);
    if let Some(schemas) = doc["components"]["schemas"].as_mapping_mut() {
        for (name, schema) in schemas.iter_mut() {
            unwrap_description_only_all_of(schema);
            if response_only
                .iter()
                .any(|n| Some(n.as_str()) == name.as_str())
            {
                always_sent_fields_required(schema);
            }
            if request_only
                .iter()
                .any(|n| Some(n.as_str()) == name.as_str())
            {
                optional_fields_nullable(schema);
            }
        }
    }
    typed_nullable_references(doc);
    share_repeated_responses(doc);
    if let Some(components) = doc["components"].as_mapping_mut() {
        let headers = serde_json::json!({"RequestId": request_id_header()});
        components.insert("headers".into(), yaml(headers));
    }
}

fn for_each_operation(doc: &mut Value, mut visit: impl FnMut(&str, &mut Value)) {
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
fn public_operations_say_so(operation: &mut Value) {
    if let Some(operation) = operation.as_mapping_mut()
        && !operation.contains_key("security")
    {
        operation.insert("security".into(), Value::Sequence(Vec::new()));
    }
}

/// `application/json; charset=utf-8` is what poem sends, but openapi-typescript's helpers only
/// find bodies under the bare media type (JSON is UTF-8 by definition, RFC 8259).
fn plain_media_types(operation: &mut Value) {
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
fn event_streams_as_text(operation: &mut Value) {
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
fn errors_also_keyed_as_json(operation: &mut Value) {
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
fn headers_lower_case_and_request_id(operation: &mut Value) {
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

fn request_id_header() -> serde_json::Value {
    serde_json::json!({
        "description": "The request's id, also in the server's log line for it: the client's \
            own `X-Request-Id` when it sent one of 1-64 visible ASCII characters, else a new one.",
        "required": true,
        "schema": {"type": "string", "maxLength": 64, "example": "4b1d3c0e9f8a4d2b8e6f0a1c2d3e4f50"},
    })
}

fn yaml(value: serde_json::Value) -> Value {
    serde_yaml::to_value(value).expect("JSON is YAML")
}

/// `{id}` meant a host in one path and a container in another: an `{id}` is named after the
/// collection it indexes (`/hosts/{host_id}`, `/containers/{container_id}`).
fn name_path_params_after_their_collection(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_mapping_mut() else {
        return;
    };
    let renamed: Mapping = std::mem::take(paths)
        .into_iter()
        .map(|(path, mut item)| {
            let path = path.as_str().unwrap_or_default();
            let segments: Vec<&str> = path.split('/').collect();
            let mut new_path = Vec::with_capacity(segments.len());
            for (i, segment) in segments.iter().enumerate() {
                match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(old @ "id") if i > 0 => {
                        let collection = segments[i - 1];
                        let new =
                            format!("{}_id", collection.strip_suffix('s').unwrap_or(collection));
                        rename_path_param(&mut item, old, &new);
                        new_path.push(format!("{{{new}}}"));
                    }
                    _ => new_path.push((*segment).to_owned()),
                }
            }
            (Value::from(new_path.join("/")), item)
        })
        .collect();
    *paths = renamed;
}

fn rename_path_param(item: &mut Value, old: &str, new: &str) {
    let Some(item) = item.as_mapping_mut() else {
        return;
    };
    for (_, operation) in item.iter_mut() {
        let Some(parameters) = operation
            .get_mut("parameters")
            .and_then(Value::as_sequence_mut)
        else {
            continue;
        };
        for parameter in parameters {
            if parameter["in"] == "path" && parameter["name"] == old {
                parameter["name"] = new.into();
            }
        }
    }
}

/// poem-openapi writes `deprecated: false` and `explode: true` (the defaults) on every
/// parameter and header; they only add noise to generated code and docs.
fn strip_defaults(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            if map.get("deprecated") == Some(&Value::Bool(false)) {
                map.remove("deprecated");
            }
            if map.get("explode") == Some(&Value::Bool(true)) {
                map.remove("explode");
            }
            map.values_mut().for_each(strip_defaults);
        }
        Value::Sequence(items) => items.iter_mut().for_each(strip_defaults),
        _ => {}
    }
}

/// `uint16/32/64` are not OpenAPI formats; generators fall back to untyped or arbitrary-size
/// integers. An unsigned value becomes the smallest standard format that holds it, minimum 0.
fn standard_integer_formats(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            let format = map.get("format").and_then(Value::as_str).map(str::to_owned);
            if let Some(bits) = format.as_deref().and_then(|f| f.strip_prefix("uint")) {
                let max = map.get("maximum").and_then(Value::as_f64);
                let fits_int32 = bits == "8"
                    || bits == "16"
                    || max.is_some_and(|max| max <= f64::from(i32::MAX));
                let format = if fits_int32 { "int32" } else { "int64" };
                map.insert("format".into(), format.into());
                if !map.contains_key("minimum") {
                    map.insert("minimum".into(), 0.into());
                }
            }
            // Bounds of an integer are integers (`minimum: 0`, not `0.0`).
            if map.get("type").and_then(Value::as_str) == Some("integer") {
                for bound in ["minimum", "maximum"] {
                    if let Some(n) = map.get(bound).and_then(Value::as_f64)
                        && n.fract() == 0.0
                    {
                        map.insert(bound.into(), (n as i64).into());
                    }
                }
            }
            map.values_mut().for_each(standard_integer_formats);
        }
        Value::Sequence(items) => items.iter_mut().for_each(standard_integer_formats),
        _ => {}
    }
}

/// poem-openapi wraps a described `$ref` as `allOf: [$ref, {description}]`, which generators
/// turn into a second, anonymous type (`HostPayloadFacts`, `Stat & unknown`). The referenced
/// schema carries the description; a nullable reference stays the one-element `allOf` that
/// OpenAPI 3.0 needs to say so, without the description element.
fn unwrap_description_only_all_of(schema: &mut Value) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_mapping_mut) else {
        return;
    };
    for (_, property) in properties.iter_mut() {
        let Some(all_of) = property.get("allOf").and_then(Value::as_sequence) else {
            continue;
        };
        let Some(reference) = all_of
            .iter()
            .find(|part| part.get("$ref").is_some())
            .cloned()
        else {
            continue;
        };
        let rest_describes_only = all_of.iter().all(|part| {
            part.get("$ref").is_some()
                || part
                    .as_mapping()
                    .is_some_and(|m| m.keys().all(|k| k == "description" || k == "nullable"))
        });
        if !rest_describes_only {
            continue;
        }
        let nullable = property["nullable"] == Value::Bool(true);
        *property = if nullable {
            let mut wrapper = Mapping::new();
            wrapper.insert("nullable".into(), true.into());
            wrapper.insert("allOf".into(), Value::Sequence(vec![reference]));
            Value::Mapping(wrapper)
        } else {
            reference
        };
    }
}

/// The server always sends every field of a response object, `null` when empty; optional would
/// give clients a third state (`int | Unset | None`) that never happens.
fn always_sent_fields_required(schema: &mut Value) {
    let Some(properties) = schema.get("properties").and_then(Value::as_mapping) else {
        return;
    };
    let names: Vec<Value> = properties.keys().cloned().collect();
    let Some(schema) = schema.as_mapping_mut() else {
        return;
    };
    let required = schema
        .entry("required".into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if let Some(required) = required.as_sequence_mut() {
        for name in names {
            if !required.contains(&name) {
                required.push(name);
            }
        }
    }
}

/// A request body's `null` stands for an absent optional field
/// ([`crate::domain::payload::check`]); saying so lets clients send what they hold (`facts: null`).
fn optional_fields_nullable(schema: &mut Value) {
    let required = schema.get("required").cloned().unwrap_or_default();
    let required = required.as_sequence().cloned().unwrap_or_default();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_mapping_mut) else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        if required.contains(name) {
            continue;
        }
        let Some(map) = property.as_mapping_mut() else {
            continue;
        };
        if map.contains_key("$ref") {
            let reference = std::mem::take(map);
            map.insert("nullable".into(), true.into());
            map.insert(
                "allOf".into(),
                Value::Sequence(vec![Value::Mapping(reference)]),
            );
        } else {
            map.insert("nullable".into(), true.into());
        }
    }
}

/// OpenAPI 3.0 makes a reference nullable as `{nullable: true, allOf: [$ref]}`; Redocly wants
/// the `type` beside `nullable`, so it is copied from the referenced schema. (Given that,
/// openapi-python-client types the field without `None`, which only means a Python client
/// omits the field rather than sending `null`; making the referenced schema nullable instead
/// breaks progenitor, which then defines the type twice.)
fn typed_nullable_references(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].clone();
    add_types(doc, &schemas);
}

fn add_types(value: &mut Value, schemas: &Value) {
    match value {
        Value::Mapping(map) => {
            let target = map
                .get("allOf")
                .and_then(Value::as_sequence)
                .filter(|all_of| all_of.len() == 1)
                .and_then(|all_of| all_of[0].get("$ref"))
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"));
            let ty = target.and_then(|name| schemas[name].get("type")).cloned();
            if map.get("nullable") == Some(&Value::Bool(true))
                && !map.contains_key("type")
                && let Some(ty) = ty
            {
                map.insert("type".into(), ty);
            }
            map.values_mut().for_each(|v| add_types(v, schemas));
        }
        Value::Sequence(items) => items.iter_mut().for_each(|v| add_types(v, schemas)),
        _ => {}
    }
}

/// Schemas reachable only from responses, and those reachable only from requests.
fn one_way_schemas(doc: &Value) -> (Vec<String>, Vec<String>) {
    let mut from_responses = Vec::new();
    let mut from_requests = Vec::new();
    if let Some(paths) = doc["paths"].as_mapping() {
        for item in paths.values() {
            for operation in item.as_mapping().into_iter().flat_map(Mapping::values) {
                collect_refs(&operation["responses"], &mut from_responses);
                collect_refs(&operation["requestBody"], &mut from_requests);
                collect_refs(&operation["parameters"], &mut from_requests);
            }
        }
    }
    // A webhook's body is sent by the server, like a response.
    if let Some(webhooks) = doc[WEBHOOKS].as_mapping() {
        for item in webhooks.values() {
            for operation in item.as_mapping().into_iter().flat_map(Mapping::values) {
                collect_refs(&operation["requestBody"], &mut from_responses);
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    for found in [&mut from_responses, &mut from_requests] {
        let mut i = 0;
        while i < found.len() {
            let mut nested = Vec::new();
            collect_refs(&schemas[found[i].as_str()], &mut nested);
            for name in nested {
                if !found.contains(&name) {
                    found.push(name);
                }
            }
            i += 1;
        }
    }
    let response_only = from_responses
        .iter()
        .filter(|name| !from_requests.contains(name))
        .cloned()
        .collect();
    from_requests.retain(|name| !from_responses.contains(name));
    (response_only, from_requests)
}

fn collect_refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                && !found.iter().any(|f| f == name)
            {
                found.push(name.to_owned());
            }
            map.values().for_each(|v| collect_refs(v, found));
        }
        Value::Sequence(items) => items.iter().for_each(|v| collect_refs(v, found)),
        _ => {}
    }
}

/// A response documented identically on several operations (401, 429, 500, 503 of every admin
/// operation) becomes one `components/responses` entry named after its status.
fn share_repeated_responses(doc: &mut Value) {
    let mut seen: Vec<(String, Value, usize)> = Vec::new();
    for_each_operation(doc, |_, operation| {
        for (status, response) in operation["responses"].as_mapping().into_iter().flatten() {
            let status = status.as_str().unwrap_or_default().to_owned();
            match seen
                .iter_mut()
                .find(|(s, r, _)| *s == status && r == response)
            {
                Some((_, _, count)) => *count += 1,
                None => seen.push((status, response.clone(), 1)),
            }
        }
    });
    // The most frequent response of each status gets the status's name; others stay inline.
    let mut shared: Vec<(String, Value, String)> = Vec::new();
    // Success bodies stay with their operation: a shared `OK` would say nothing.
    seen.retain(|(status, _, _)| status.as_str() >= "400");
    for (status, response, count) in &seen {
        let most = seen
            .iter()
            .filter(|(s, _, _)| s == status)
            .map(|(_, _, c)| *c)
            .max()
            .unwrap_or(0);
        let first_most = seen
            .iter()
            .find(|(s, _, c)| s == status && *c == most)
            .is_some_and(|(_, r, _)| r == response);
        if *count > 1 && first_most {
            shared.push((status.clone(), response.clone(), response_name(status)));
        }
    }
    if shared.is_empty() {
        return;
    }
    for_each_operation(doc, |_, operation| {
        let Some(responses) = operation["responses"].as_mapping_mut() else {
            return;
        };
        for (status, response) in responses.iter_mut() {
            let status = status.as_str().unwrap_or_default();
            if let Some((_, _, name)) = shared
                .iter()
                .find(|(s, r, _)| s == status && r == &*response)
            {
                let mut reference = Mapping::new();
                reference.insert(
                    "$ref".into(),
                    format!("#/components/responses/{name}").into(),
                );
                *response = Value::Mapping(reference);
            }
        }
    });
    let components = doc["components"]
        .as_mapping_mut()
        .expect("the document has components");
    let responses = components
        .entry("responses".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if let Some(responses) = responses.as_mapping_mut() {
        for (_, response, name) in shared {
            responses.insert(name.into(), response);
        }
    }
}

/// `503` → `ServiceUnavailable`.
fn response_name(status: &str) -> String {
    let reason = status
        .parse::<u16>()
        .ok()
        .and_then(|code| poem::http::StatusCode::from_u16(code).ok())
        .and_then(|code| code.canonical_reason())
        .unwrap_or(status);
    reason
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Where the webhooks' messages are described. OpenAPI 3.1's `webhooks` is not in 3.0, which
/// this document is (poem-openapi's, and what every client generator in the tests reads);
/// `x-webhooks` is the extension Redocly and Redoc read for it, with the same shape, and the
/// bodies' schemas are components, so generators emit the receiver's types.
const WEBHOOKS: &str = "x-webhooks";

/// The webhook messages (src/webhooks/payload.rs): their schemas and `x-webhooks`.
fn describe_webhooks(doc: &mut Value) {
    use crate::webhooks::payload::{SlackMessage, WebhookEvent};
    use poem_openapi::types::Type;
    let mut registry = poem_openapi::registry::Registry::new();
    WebhookEvent::register(&mut registry);
    SlackMessage::register(&mut registry);
    if let Some(schemas) = doc["components"]["schemas"].as_mapping_mut() {
        for (name, schema) in registry.schemas {
            if !schemas.contains_key(name.as_str()) {
                let schema = serde_yaml::to_value(schema).expect("a schema serialises");
                schemas.insert(name.into(), schema);
            }
        }
    }
    let header = |name: &str, description: &str| {
        serde_json::json!({
            "name": name, "in": "header", "required": true,
            "description": description, "schema": {"type": "string"},
        })
    };
    let parameters = [
        header(
            "webhook-id",
            "The delivery's id (`msg_<id>`), the same on every attempt: deduplicate on it.",
        ),
        header(
            "webhook-timestamp",
            "When this attempt was sent, in Unix seconds; refuse ones far from now (the \
             Standard Webhooks libraries allow 5 minutes).",
        ),
        header(
            "webhook-signature",
            "`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` keyed \
             with the endpoint's secret (its base64 after `whsec_`, decoded). Verify it with \
             a Standard Webhooks library.",
        ),
    ];
    let message = |summary: &str, operation_id: &str, schema: &str| {
        serde_json::json!({"post": {
            "summary": summary,
            "description": "Posted to each enabled endpoint subscribed to the event's kind, \
                signed per the Standard Webhooks specification, at least once: retried with \
                exponential backoff for about 24 hours (docs/alerts.md), under the same \
                `webhook-id`.",
            "operationId": operation_id,
            "tags": ["Admin"],
            "security": [],
            "parameters": parameters,
            "requestBody": {
                "required": true,
                "content": {JSON: {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
            },
            "responses": {
                "200": {"description": "Any 2xx acknowledges the delivery."},
                "4XX": {"description": "A failed attempt, retried later; so is any other \
                    status that is not 2xx, or no answer within the attempt's timeout."},
            },
        }})
    };
    let webhooks = serde_json::json!({
        "event": message("An event, to a `json` endpoint", "receive_event", "WebhookEvent"),
        "slack_message": message(
            "An event as one line, to a `slack` endpoint",
            "receive_slack_message",
            "SlackMessage",
        ),
    });
    if let Some(root) = doc.as_mapping_mut() {
        root.insert(WEBHOOKS.into(), yaml(webhooks));
    }
}
