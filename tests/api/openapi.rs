//! The OpenAPI document: committed, served, equal to what the code generates, and shaped so
//! that generated clients need no workaround (issue 19 lists each defect these tests rule out).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const COMMITTED: &str = include_str!("../../openapi/openapi.yaml");

fn spec() -> Value {
    serde_json::from_str(&nexus_telemetry::api::openapi::document::document().json).unwrap()
}

/// `value`, or what its `$ref` points at.
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => reference
            .trim_start_matches("#/")
            .split('/')
            .fold(spec, |node, key| &node[key]),
        None => value,
    }
}

/// Every operation: (path, method, operation).
fn operations(spec: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            found.push((path.clone(), method.clone(), operation));
        }
    }
    found
}

/// Visits every JSON object of `value`, depth first.
fn visit(value: &Value, at: &str, check: &mut impl FnMut(&str, &serde_json::Map<String, Value>)) {
    match value {
        Value::Object(map) => {
            check(at, map);
            for (key, child) in map {
                visit(child, &format!("{at}/{key}"), check);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                visit(child, &format!("{at}/{i}"), check);
            }
        }
        _ => {}
    }
}

#[test]
fn the_committed_document_matches_the_code() {
    let generated = &nexus_telemetry::api::openapi::document::document().yaml;
    assert!(
        *generated == COMMITTED,
        "openapi/openapi.yaml is stale; regenerate it with `cargo run -q -- openapi > openapi/openapi.yaml`"
    );
}

#[tokio::test]
async fn the_document_is_served_as_json_and_yaml_with_interactive_docs() {
    let app = TestApp::spawn().await;

    let json: Value = app
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

    assert_eq!(json, spec());
    assert_eq!(yaml, COMMITTED, "served byte for byte as committed");
    assert_eq!(docs.status(), 200);
    assert_eq!(docs.headers()["x-content-type-options"], "nosniff");
    assert_eq!(docs.headers()["x-frame-options"], "DENY");
    let page = docs.text().await.unwrap();
    assert!(
        page.contains("\"{host_id}\"") || page.contains("{host_id}"),
        "the docs page embeds the rewritten document"
    );
}

#[test]
fn the_telemetry_operation_documents_every_status_and_the_bearer_scheme() {
    let spec = spec();
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
    let too_many = resolve(&spec, &operation["responses"]["429"]);
    assert_eq!(
        too_many["headers"]["retry-after"]["schema"]["type"],
        "integer"
    );
    for quota in ["x-ratelimit-limit", "x-ratelimit-remaining"] {
        assert_ne!(too_many["headers"][quota]["required"], true, "{quota}");
        assert_eq!(
            operation["responses"]["204"]["headers"][quota]["required"],
            true
        );
    }
    // The limit is a sliding 60-second window (README, `--help`), on both answers.
    for response in [&operation["responses"]["204"], too_many] {
        let remaining = response["headers"]["x-ratelimit-remaining"]["description"]
            .as_str()
            .unwrap();
        assert!(remaining.contains("60-second window"), "{remaining}");
        assert!(!remaining.contains("burst"), "{remaining}");
    }
    assert_eq!(
        resolve(&spec, &operation["responses"]["401"])["headers"]["www-authenticate"]["schema"]["type"],
        "string"
    );
    let unprocessable = resolve(&spec, &operation["responses"]["422"]);
    assert!(unprocessable["content"]["application/problem+json"].is_object());
    assert!(
        operation["requestBody"]["description"]
            .as_str()
            .unwrap()
            .contains("Content-Encoding: gzip")
    );
    assert_eq!(operation["security"][0]["AgentToken"], json!([]));
    let scheme = &spec["components"]["securitySchemes"]["AgentToken"];
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "nxa_<64 hex digits>");
    let bounds = &spec["components"]["schemas"]["HostMetrics"]["properties"]["cpu_percent"];
    assert_eq!(
        (bounds["minimum"].as_f64(), bounds["maximum"].as_f64()),
        (Some(0.0), Some(100.0))
    );
}

#[test]
fn every_admin_operation_documents_its_statuses_and_the_admin_bearer() {
    let spec = spec();
    let expected: [(&str, &str, &str, &[&str]); 18] = [
        (
            "/api/v1/hosts",
            "post",
            "create_host",
            &["201", "400", "408", "409", "413", "415", "422"],
        ),
        ("/api/v1/hosts", "get", "list_hosts", &["200", "422"]),
        (
            "/api/v1/hosts/{host_id}",
            "get",
            "get_host",
            &["200", "404", "422"],
        ),
        (
            "/api/v1/hosts/{host_id}",
            "patch",
            "update_host",
            &["200", "400", "404", "408", "413", "415", "422"],
        ),
        (
            "/api/v1/hosts/{host_id}/archive",
            "post",
            "archive_host",
            &["200", "404", "422"],
        ),
        (
            "/api/v1/hosts/{host_id}/tokens",
            "post",
            "issue_host_token",
            &["201", "400", "404", "408", "409", "413", "415", "422"],
        ),
        (
            "/api/v1/hosts/{host_id}/tokens",
            "get",
            "list_host_tokens",
            &["200", "404", "422"],
        ),
        (
            "/api/v1/hosts/{host_id}/tokens/{token_id}/rotate",
            "post",
            "rotate_host_token",
            &["201", "404", "409", "422"],
        ),
        (
            "/api/v1/hosts/{host_id}/tokens/{token_id}",
            "delete",
            "revoke_host_token",
            &["204", "404", "422"],
        ),
        (
            "/api/v1/alert-rules",
            "get",
            "list_alert_rules",
            &["200", "422"],
        ),
        (
            "/api/v1/alert-rules",
            "post",
            "create_alert_rule",
            &["201", "400", "408", "409", "413", "415", "422"],
        ),
        (
            "/api/v1/alert-rules/{alert_rule_id}",
            "get",
            "get_alert_rule",
            &["200", "404", "422"],
        ),
        (
            "/api/v1/alert-rules/{alert_rule_id}",
            "put",
            "update_alert_rule",
            &["200", "400", "404", "408", "409", "413", "415", "422"],
        ),
        (
            "/api/v1/alert-rules/{alert_rule_id}",
            "delete",
            "delete_alert_rule",
            &["204", "404", "422"],
        ),
        ("/api/v1/alerts", "get", "list_alerts", &["200", "422"]),
        (
            "/api/v1/alerts/{alert_id}",
            "get",
            "get_alert",
            &["200", "404", "422"],
        ),
        (
            "/api/v1/alerts/{alert_id}/acknowledge",
            "post",
            "acknowledge_alert",
            &["200", "404", "409", "422"],
        ),
        (
            "/api/v1/alerts/{alert_id}/silence",
            "post",
            "silence_alert",
            &["200", "400", "404", "408", "409", "413", "415", "422"],
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
        assert_eq!(operation["security"][0]["AdminToken"], json!([]));
        assert_eq!(
            resolve(&spec, &operation["responses"]["401"])["headers"]["www-authenticate"]["schema"]
                ["type"],
            "string"
        );
    }
    let scheme = &spec["components"]["securitySchemes"]["AdminToken"];
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "nxk_<64 hex digits>");
    let host = &spec["components"]["schemas"]["Host"];
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
        assert!(
            host["properties"][field].is_object(),
            "Host documents {field}"
        );
        assert!(
            host["required"].as_array().unwrap().contains(&json!(field)),
            "Host.{field} is always sent, so required"
        );
    }
}

#[test]
fn the_metrics_range_is_optional_and_the_document_states_its_defaults() {
    let spec = spec();
    for path in [
        "/api/v1/hosts/{host_id}/metrics",
        "/api/v1/containers/{container_id}/metrics",
    ] {
        let parameters = spec["paths"][path]["get"]["parameters"].as_array().unwrap();
        let parameter = |name: &str| {
            let found = parameters.iter().find(|p| p["name"] == name).unwrap();
            assert_eq!(found["required"], false, "{path} {name}");
            found["description"].as_str().unwrap().to_owned()
        };
        assert!(parameter("since").contains("default: one hour before `until`"));
        assert!(parameter("until").contains("default: now"));
        for (old, new) in [("from", "since"), ("to", "until")] {
            assert!(parameter(old).contains(&format!("Deprecated name of `{new}`")));
        }
        let description = spec["paths"][path]["get"]["description"].as_str().unwrap();
        let words: Vec<&str> = description.split_whitespace().collect();
        assert!(
            words.join(" ").contains("without a range, the last hour"),
            "{path}"
        );
    }
}

#[test]
fn no_request_property_has_a_default_that_typescript_would_make_required() {
    // openapi-typescript types a property with a `default` as always present, so a client
    // would have to send what the server defaults; the default is said in words instead.
    let spec = spec();
    for name in [
        "NewAgentToken",
        "NewHost",
        "HostUpdate",
        "TelemetryPayload",
        "RuleDefinition",
        "Silence",
    ] {
        let schema = &spec["components"]["schemas"][name];
        for (field, property) in schema["properties"].as_object().unwrap() {
            assert!(property.get("default").is_none(), "{name}.{field}");
        }
    }
    let bind = &spec["components"]["schemas"]["NewAgentToken"];
    assert_eq!(bind["required"], json!(["name"]));
    assert!(
        bind["properties"]["bind_fingerprint"]["description"]
            .as_str()
            .unwrap()
            .contains("Off when absent")
    );
}

#[test]
fn the_label_filter_is_optional() {
    let spec = spec();
    let parameters = spec["paths"]["/api/v1/hosts"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let label = parameters.iter().find(|p| p["name"] == "label").unwrap();
    assert_eq!(label["required"], false);
}

#[test]
fn fields_always_sent_are_required_and_nullable_instead_of_optional() {
    let spec = spec();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for (schema, field) in [
        ("Host", "last_seen_at"),
        ("Host", "archived_at"),
        ("AgentTokenInfo", "last_used_at"),
        ("AgentTokenInfo", "revoked_at"),
        ("HostPage", "next_cursor"),
        ("Stat", "avg"),
        ("Stat", "max"),
        ("ContainerState", "health_status"),
        ("FailureSummary", "last_token_id"),
    ] {
        let schema_value = &schemas[schema];
        assert!(
            schema_value["required"]
                .as_array()
                .unwrap()
                .contains(&json!(field)),
            "{schema}.{field} is required"
        );
        assert_eq!(
            schema_value["properties"][field]["nullable"], true,
            "{schema}.{field} is nullable"
        );
    }
    // A request may send null for any optional field (it stands for absent), `facts` too.
    let facts = &schemas["HostPayload"]["properties"]["facts"];
    assert_eq!(
        (&facts["type"], &facts["nullable"]),
        (&json!("object"), &json!(true))
    );
    assert_eq!(
        facts["allOf"],
        json!([{"$ref": "#/components/schemas/HostFacts"}])
    );
}

#[test]
fn success_bodies_are_plain_json_and_errors_are_problem_json_and_json() {
    let spec = spec();
    for (path, method, operation) in operations(&spec) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = resolve(&spec, response);
            let types: Vec<&str> = response["content"]
                .as_object()
                .map(|content| content.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let expected: &[&str] = if status.starts_with('2') {
                if path == "/metrics" {
                    &["text/plain"]
                } else if path == "/api/v1/events/stream" {
                    &["text/event-stream"]
                } else if types.is_empty() {
                    &[]
                } else {
                    &["application/json"]
                }
            } else {
                // Sorted: serde_json's maps are.
                &["application/json", "application/problem+json"]
            };
            assert_eq!(types, expected, "{method} {path} {status}");
        }
    }
}

#[test]
fn no_schema_wraps_a_reference_only_to_describe_it() {
    let spec = spec();
    visit(&spec, "#", &mut |at, map| {
        if let Some(all_of) = map.get("allOf").and_then(Value::as_array) {
            assert_eq!(
                all_of.len(),
                1,
                "{at}: only a nullable reference is wrapped"
            );
            assert_eq!(map.get("nullable"), Some(&json!(true)), "{at}");
        }
    });
}

#[test]
fn closed_sets_are_enums() {
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["Health"]["properties"]["status"]["$ref"],
        "#/components/schemas/HealthStatus"
    );
    assert_eq!(schemas["HealthStatus"]["enum"], json!(["ok", "ready"]));
    assert_eq!(
        schemas["HostStatus"]["enum"],
        json!(["pending", "online", "offline", "degraded", "archived"])
    );
    assert_eq!(
        schemas["Bucket"]["enum"],
        json!(["1m", "5m", "15m", "1h", "6h", "1d"])
    );
    assert_eq!(
        schemas["EventKind"]["enum"],
        json!([
            "online",
            "offline",
            "recovered",
            "created",
            "removed",
            "state_changed",
            "health_changed",
            "restarted",
            "oom_killed",
            "alert_firing",
            "alert_resolved",
            "alert_acknowledged"
        ])
    );
}

#[test]
fn public_operations_declare_no_security_and_the_document_lints_clean_of_known_errors() {
    let spec = spec();
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(spec["paths"][path]["get"]["security"], json!([]), "{path}");
    }
    assert!(spec["servers"][0]["url"].is_string());
    assert!(spec["info"]["license"]["url"].is_string());
    for (path, method, operation) in operations(&spec) {
        for key in ["summary", "description", "operationId"] {
            assert!(
                operation[key].as_str().is_some_and(|text| !text.is_empty()),
                "{method} {path} has a {key}"
            );
        }
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = resolve(&spec, response);
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} is described"
            );
            let request_id = resolve(&spec, &response["headers"]["x-request-id"]);
            assert_eq!(request_id["required"], true, "{method} {path} {status}");
            for name in response["headers"].as_object().unwrap().keys() {
                assert_eq!(*name, name.to_ascii_lowercase(), "{method} {path} {status}");
            }
        }
    }
}

#[test]
fn names_and_formats_are_the_ones_generators_expect() {
    let spec = spec();
    for (path, method, operation) in operations(&spec) {
        let id = operation["operationId"].as_str().unwrap();
        let (verb, resource) = id.split_once('_').unwrap_or((id, ""));
        assert!(
            [
                "get",
                "list",
                "create",
                "update",
                "delete",
                "archive",
                "issue",
                "rotate",
                "revoke",
                "push",
                "stream",
                "acknowledge",
                "silence",
                "redeliver"
            ]
            .contains(&verb)
                && !resource.is_empty(),
            "{method} {path}: {id} is <verb>_<resource>"
        );
        let segments: Vec<&str> = path.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            // An id is named after its collection (`/hosts/{host_id}`), never a bare `{id}`.
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
                && name.ends_with("id")
            {
                let collection = segments[i - 1].replace('-', "_");
                let singular = match collection.strip_suffix("ies") {
                    Some(stem) => format!("{stem}y"), // deliveries: delivery_id
                    None => collection.trim_end_matches('s').to_owned(),
                };
                assert_eq!(name, format!("{singular}_id"), "{path}");
            }
        }
    }
    visit(&spec, "#", &mut |at, map| {
        if let Some(format) = map.get("format").and_then(Value::as_str) {
            assert!(
                ["int32", "int64", "double", "float", "date-time"].contains(&format),
                "{at}: format {format}"
            );
        }
        assert_ne!(map.get("deprecated"), Some(&json!(false)), "{at}");
        assert_ne!(map.get("explode"), Some(&json!(true)), "{at}");
    });
    // One 503 for every operation that needs the database (`/readyz` has its own).
    for (path, method, operation) in operations(&spec) {
        let unavailable = &operation["responses"]["503"];
        if !unavailable.is_null() && path != "/readyz" {
            assert_eq!(
                unavailable["$ref"], "#/components/responses/ServiceUnavailable",
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn problems_carry_a_type_per_cause_and_plain_words() {
    let app = TestApp::spawn_with(&["--auth-failures-per-minute", "1"]).await;
    let admin = app.admin_token().await;
    let (host, _) = app.host_with_token("typed").await;
    let problem = |name: &str| format!("tag:nexus-telemetry,2026:problem:{name}");

    let no_host = app
        .admin(Method::GET, "/hosts/999999", Some(&admin), None)
        .await;
    let no_token = app
        .admin(
            Method::DELETE,
            &format!("/hosts/{host}/tokens/999999"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((no_host.status, no_token.status), (404, 404));
    assert_eq!(no_host.body["type"], problem("host-not-found"));
    assert_eq!(no_token.body["type"], problem("token-not-found"));

    let backwards = format!("/hosts/{host}/metrics?since=2099-01-01T00:00:00Z");
    let bad_from = format!("/hosts/{host}/metrics?from=yesterday&to=2026-01-01T00:00:00Z");
    let cases = [
        ("/hosts/abc", "host_id", "must be an integer"),
        ("/hosts?limit=0", "limit", "must be at least 1"),
        ("/hosts?limit=201", "limit", "must be at most 200"),
        (backwards.as_str(), "until", "must be later than `since`"),
        (bad_from.as_str(), "from", "must be an RFC 3339 timestamp"),
        ("/hosts?status=sleeping", "status", "is not one of"),
    ];
    for (path, field, message) in cases {
        let answer = app.admin(Method::GET, path, Some(&admin), None).await;
        assert_eq!(answer.status, 422, "{path}");
        assert_eq!(answer.body["type"], problem("validation"), "{path}");
        assert_eq!(answer.body["errors"][0]["field"], field, "{path}");
        let said = answer.body["errors"][0]["message"].as_str().unwrap();
        assert!(said.starts_with(message), "{path}: {said}");
        for leak in ["integer_", "string_", "exclusive", "verification"] {
            assert!(!said.contains(leak), "{path}: {said}");
        }
    }

    // Both 429s: the address that failed authentication, then a token over its quota.
    let guess = app
        .admin(Method::GET, "/hosts", Some("nxk_wrong"), None)
        .await;
    assert_eq!(guess.status, 401);
    assert_eq!(guess.body["type"], problem("unauthorized"));
    let refused = app
        .admin(Method::GET, "/hosts", Some("nxk_wrong"), None)
        .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["type"], problem("auth-failures-limited"));
}

#[tokio::test]
async fn a_token_over_its_quota_gets_its_own_problem_type_with_the_quota_headers() {
    let app = TestApp::spawn_with(&["--rate-limit-per-minute", "1"]).await;
    let (_, token) = app.host_with_token("quota").await;
    let body = crate::helpers::payload(&crate::helpers::at(chrono::Duration::zero()), &[]);
    assert_eq!(app.post_telemetry(&token, &body).await.status(), 204);
    let refused = app.post_telemetry(&token, &body).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["x-ratelimit-remaining"], "0");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "tag:nexus-telemetry,2026:problem:rate-limited"
    );
}

#[tokio::test]
async fn a_client_that_accepts_only_json_gets_problems_as_application_json() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let url = format!("{}/api/v1/hosts/999999", app.address);
    for (accept, expected) in [
        (None, "application/problem+json"),
        (Some("application/json"), "application/json"),
        (
            Some("application/problem+json, application/json"),
            "application/problem+json",
        ),
    ] {
        let mut request = app.http.get(&url).bearer_auth(&admin);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 404);
        assert_eq!(answer.headers()["content-type"], expected, "{accept:?}");
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["status"], 404);
    }
}
