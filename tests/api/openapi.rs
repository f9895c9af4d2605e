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

#[test]
fn every_admin_operation_documents_its_statuses_and_the_admin_bearer() {
    let spec: serde_json::Value =
        serde_json::from_str(&nexus_telemetry::api::openapi().spec()).unwrap();
    let expected: [(&str, &str, &str, &[&str]); 9] = [
        (
            "/api/v1/hosts",
            "post",
            "create_host",
            &["201", "400", "408", "409", "413", "415", "422"],
        ),
        ("/api/v1/hosts", "get", "list_hosts", &["200", "422"]),
        (
            "/api/v1/hosts/{id}",
            "get",
            "get_host",
            &["200", "404", "422"],
        ),
        (
            "/api/v1/hosts/{id}",
            "patch",
            "update_host",
            &["200", "400", "404", "408", "413", "415", "422"],
        ),
        (
            "/api/v1/hosts/{id}/archive",
            "post",
            "archive_host",
            &["200", "404", "422"],
        ),
        (
            "/api/v1/hosts/{id}/tokens",
            "post",
            "issue_token",
            &["201", "400", "404", "408", "409", "413", "415", "422"],
        ),
        (
            "/api/v1/hosts/{id}/tokens",
            "get",
            "list_tokens",
            &["200", "404", "422"],
        ),
        (
            "/api/v1/hosts/{id}/tokens/{token_id}/rotate",
            "post",
            "rotate_token",
            &["201", "404", "409", "422"],
        ),
        (
            "/api/v1/hosts/{id}/tokens/{token_id}",
            "delete",
            "revoke_token",
            &["204", "404", "422"],
        ),
    ];
    for (path, method, operation_id, statuses) in expected {
        let operation = &spec["paths"][path][method];
        assert_eq!(operation["operationId"], operation_id, "{method} {path}");
        let mut want: Vec<&str> = statuses.to_vec();
        want.extend(["401", "429", "500", "503"]);
        want.sort();
        let mut got: Vec<&str> = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is documented"))
            .keys()
            .map(String::as_str)
            .collect();
        got.sort();
        assert_eq!(got, want, "{operation_id}");
        assert_eq!(
            operation["security"][0]["AdminToken"],
            serde_json::json!([])
        );
        assert_eq!(
            operation["responses"]["401"]["headers"]["WWW-AUTHENTICATE"]["schema"]["type"],
            "string"
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["AdminToken"]["scheme"],
        "bearer"
    );
    let host = &spec["components"]["schemas"]["Host"]["properties"];
    for field in [
        "id",
        "name",
        "slug",
        "status",
        "labels",
        "last_seen_at",
        "cpu_count",
        "memory_total_mb",
        "disk_total_gb",
        "os",
        "docker_version",
        "archived_at",
        "created_at",
        "updated_at",
    ] {
        assert!(host[field].is_object(), "Host documents {field}");
    }
}
