//! The messages the server posts to webhook endpoints, described under `x-webhooks`.

use serde_yaml::Value;

use super::{JSON, yaml};

/// Where the webhooks' messages are described. OpenAPI 3.1's `webhooks` is not in 3.0, which
/// this document is (poem-openapi's, and what every client generator in the tests reads);
/// `x-webhooks` is the extension Redocly and Redoc read for it, with the same shape, and the
/// bodies' schemas are components, so generators emit the receiver's types.
pub(super) const WEBHOOKS: &str = "x-webhooks";

/// The webhook messages (src/webhooks/payload.rs): their schemas and `x-webhooks`.
pub(super) fn describe_webhooks(doc: &mut Value) {
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
