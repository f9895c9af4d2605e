//! The schemas: defaults left out, standard formats, nullability and required fields as clients
//! should see them.

use serde_yaml::{Mapping, Value};

use super::webhooks::WEBHOOKS;

/// poem-openapi writes `deprecated: false` and `explode: true` (the defaults) on every
/// parameter and header; they only add noise to generated code and docs.
pub(super) fn strip_defaults(value: &mut Value) {
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
pub(super) fn standard_integer_formats(value: &mut Value) {
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
pub(super) fn unwrap_description_only_all_of(schema: &mut Value) {
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
pub(super) fn always_sent_fields_required(schema: &mut Value) {
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
/// ([`crate::domain::schema_check`]); saying so lets clients send what they hold (`facts: null`).
pub(super) fn optional_fields_nullable(schema: &mut Value) {
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
pub(super) fn typed_nullable_references(doc: &mut Value) {
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
pub(super) fn one_way_schemas(doc: &Value) -> (Vec<String>, Vec<String>) {
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
