//! The rewrites that make clients generated from poem-openapi's output clean, in the order
//! [`rewrite`] applies them; each says which generator or linter it serves. By what they touch:
//! [`operations`] (each operation's media types, headers and security), [`paths`] (path
//! parameters' names), [`schemas`] (formats, nullability, what is required), [`responses`]
//! (shared components) and [`webhooks`] (the messages the server posts).

mod operations;
mod paths;
mod responses;
mod schemas;
mod webhooks;

use serde_yaml::Value;

use crate::api::errors::problem::PROBLEM_CONTENT_TYPE as PROBLEM_JSON;
use operations::{
    errors_also_keyed_as_json, event_streams_as_text, for_each_operation,
    headers_lower_case_and_request_id, plain_media_types, public_operations_say_so,
    request_id_header,
};
use paths::name_path_params_after_their_collection;
use responses::share_repeated_responses;
use schemas::{
    always_sent_fields_required, one_way_schemas, optional_fields_nullable,
    standard_integer_formats, strip_defaults, typed_nullable_references,
    unwrap_description_only_all_of,
};
use webhooks::describe_webhooks;

const JSON: &str = "application/json";

/// Rewrites poem-openapi's document in place.
pub(super) fn rewrite(doc: &mut Value) {
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

fn yaml(value: serde_json::Value) -> Value {
    serde_yaml::to_value(value).expect("JSON is YAML")
}
