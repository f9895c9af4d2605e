//! The committed document passes the tools integrators run on it: OpenAPI's validator and
//! Redocly's linter with its recommended rules. (The client generators, which stop on any
//! warning, run in `generated_client.rs`.) Each tool is pinned and installed by `scripts/test`
//! (its path in an environment variable; on the PATH otherwise).

use std::process::Output;

use serde_json::json;

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");

fn run(variable: &str, fallback: &str, args: &[&str]) -> Output {
    let program = std::env::var(variable).unwrap_or_else(|_| fallback.into());
    std::process::Command::new(&program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // Redocly: no usage telemetry, no update check.
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); run the suite with scripts/test"))
}

fn report(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn openapi_spec_validator_accepts_the_document() {
    let output = run("OPENAPI_SPEC_VALIDATOR", "openapi-spec-validator", &[SPEC]);
    assert!(output.status.success(), "{}", report(&output));
}

#[test]
fn redocly_lint_with_the_recommended_rules_finds_no_error_and_no_unexplained_warning() {
    // Run as integrators would, from the project's root: redocly.yaml extends the recommended
    // rules, and .redocly.lint-ignore.yaml lists (and says why) the problems that are meant.
    let output = run(
        "REDOCLY",
        "redocly",
        &["lint", "--format=json", "openapi/openapi.yaml"],
    );
    assert!(output.status.success(), "{}", report(&output));
    let findings: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("Redocly's JSON report ({e}):\n{}", report(&output)));
    let explained = include_str!("../../.redocly.lint-ignore.yaml")
        .lines()
        .filter(|line| line.trim_start().starts_with("- '#/"))
        .count();
    assert_eq!(
        (
            &findings["totals"]["errors"],
            &findings["totals"]["warnings"],
            &findings["totals"]["ignored"]
        ),
        (&json!(0), &json!(0), &json!(explained)),
        "{findings:#}"
    );
}
