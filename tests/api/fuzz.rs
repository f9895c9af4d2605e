//! Property-based fuzzing of the running server from its own OpenAPI document (schemathesis):
//! no 5xx for any generated request, and every response conforms to the document.

use crate::helpers::TestApp;

/// The schemathesis executable: `$SCHEMATHESIS` (set by `scripts/test`, which installs it into
/// a cached virtualenv) or `schemathesis` on the PATH.
fn schemathesis() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_response() {
    let app = TestApp::spawn_with(&[
        "--rate-limit-per-minute",
        "100000",
        "--auth-failures-per-minute",
        "100000",
    ])
    .await;
    let (_, token) = app.host_with_token("fuzzed").await;
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");

    let output = tokio::process::Command::new(schemathesis())
        .args(["run", spec, "--url", &app.address])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "60", "--seed", "20261127", "--max-time", "90"])
        .args(["--phases", "examples,coverage,fuzzing", "--no-color"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); run the suite with scripts/test", schemathesis()));

    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("/agent/telemetry"),
        "the agent endpoint was exercised:\n{report}"
    );
}
