//! The OpenAPI document: committed, served, and equal to what the code generates.

use crate::helpers::TestApp;

const COMMITTED: &str = include_str!("../../openapi/openapi.yaml");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = nexus_telemetry::api::openapi().spec_yaml();
    assert!(
        generated.trim_end() == COMMITTED.trim_end(),
        "openapi/openapi.yaml is stale; regenerate it with `cargo run -q -- openapi > openapi/openapi.yaml`"
    );
}

#[tokio::test]
async fn the_document_is_served_as_json_and_yaml_with_interactive_docs() {
    let app = TestApp::spawn().await;

    let json: serde_json::Value = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let yaml = app
        .http
        .get(format!("{}/openapi.yaml", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let docs = app
        .http
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();

    let generated: serde_json::Value =
        serde_json::from_str(&nexus_telemetry::api::openapi().spec()).unwrap();
    assert_eq!(json, generated);
    assert_eq!(yaml.trim_end(), COMMITTED.trim_end());
    assert_eq!(docs.status(), 200);
    assert_eq!(docs.headers()["x-content-type-options"], "nosniff");
    assert_eq!(docs.headers()["x-frame-options"], "DENY");
}

#[test]
fn the_telemetry_operation_documents_every_status_and_the_bearer_scheme() {
    let spec: serde_json::Value =
        serde_json::from_str(&nexus_telemetry::api::openapi().spec()).unwrap();
    let operation = &spec["paths"]["/agent/telemetry"]["post"];
    let statuses: Vec<&str> = operation["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        statuses,
        [
            "204", "400", "401", "408", "413", "415", "422", "429", "500", "503"
        ]
    );
    assert_eq!(
        operation["responses"]["429"]["headers"]["RETRY-AFTER"]["schema"]["type"],
        "integer"
    );
    assert_eq!(
        operation["responses"]["401"]["headers"]["WWW-AUTHENTICATE"]["schema"]["type"],
        "string"
    );
    assert!(operation["responses"]["422"]["content"]["application/problem+json"].is_object());
    assert_eq!(
        operation["security"][0]["AgentToken"],
        serde_json::json!([])
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["AgentToken"]["scheme"],
        "bearer"
    );
    let bounds = &spec["components"]["schemas"]["HostMetrics"]["properties"]["cpu_percent"];
    assert_eq!(
        (bounds["minimum"].as_f64(), bounds["maximum"].as_f64()),
        (Some(0.0), Some(100.0))
    );
}
