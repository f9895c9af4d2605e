//! Property-based fuzzing of the admin API with an admin token (schemathesis, as in `fuzz.rs`,
//! which only reaches the admin operations with an agent token, i.e. their 401s): no 5xx for
//! any generated request, and every response conforms to the document.

use crate::helpers::TestApp;

fn schemathesis() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_admin_response() {
    let app = TestApp::spawn_with(&["--auth-failures-per-minute", "100000"]).await;
    let admin = app.admin_token().await;
    for name in ["alpha", "beta"] {
        app.host_with_token(name).await;
    }
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");

    let output = tokio::process::Command::new(schemathesis())
        .args(["run", spec, "--url", &app.address, "--include-tag", "Admin"])
        // A stream never ends; tests/api/event_stream.rs checks its messages.
        .args(["--exclude-path", "/api/v1/events/stream"])
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "40", "--seed", "20261127", "--max-time", "90"])
        .args(["--phases", "examples,coverage,fuzzing", "--no-color"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run the suite with scripts/test",
                schemathesis()
            )
        });

    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Counted, not looked for by name: a passing report need not name any operation.
    assert!(
        report.contains("Selected: 32/") && report.contains("Tested: 32"),
        "the thirty-two admin operations were exercised:\n{report}"
    );
}
