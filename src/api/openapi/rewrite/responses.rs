//! Responses documented identically on several operations, shared as components.

use serde_yaml::{Mapping, Value};

use super::operations::for_each_operation;

/// A response documented identically on several operations (401, 429, 500, 503 of every admin
/// operation) becomes one `components/responses` entry named after its status.
pub(super) fn share_repeated_responses(doc: &mut Value) {
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
