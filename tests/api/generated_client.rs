//! Clients generated from the committed document drive the real server through an integrator's
//! day: the Rust client (progenitor, crate `clients/rust`) here, and the README flow (register a
//! host, issue a token, push a snapshot, read a typed 422, list hosts, read metrics the way the
//! document allows, read the auth-failure summary) in Python (openapi-python-client, checked by
//! `mypy --strict`) and TypeScript (openapi-typescript + openapi-fetch, checked by
//! `tsc --strict`), from `clients/python` and `clients/typescript`. Every body is the generated
//! types' own; nothing decodes by hand or casts. The generators, checkers and runtimes are
//! pinned and installed by `scripts/test`.

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use nexus_client::{Client, Error, types};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::helpers::TestApp;

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients");

fn client(address: &str, bearer: &str) -> Client {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {bearer}")).unwrap();
    headers.insert(AUTHORIZATION, value);
    let http = crate::helpers::http_client_builder()
        .default_headers(headers)
        .build()
        .unwrap();
    Client::new_with_client(address, http)
}

/// The problem of a refused call, as the generated client types it.
fn problem<T: std::fmt::Debug>(result: Result<T, Error<types::Problem>>) -> types::Problem {
    match result {
        Err(Error::ErrorResponse(answer)) => answer.into_inner(),
        other => panic!("expected a documented error answer, got {other:?}"),
    }
}

fn snapshot(cpu_percent: f64) -> types::TelemetryPayload {
    types::TelemetryPayload {
        recorded_at: Utc::now(),
        host: types::HostPayload {
            metrics: types::HostMetrics {
                cpu_percent: Some(cpu_percent),
                memory_used_mb: Some(2048),
                memory_total_mb: Some(8192),
                ..Default::default()
            },
            facts: Some(types::HostFacts {
                cpu_count: std::num::NonZeroU32::new(4),
                ..Default::default()
            }),
        },
        containers: Some(Vec::new()),
    }
}

#[tokio::test]
async fn a_generated_client_does_an_integrators_round_trip_without_workarounds() {
    let app = TestApp::spawn().await;
    let admin = client(&app.address, &app.admin_token().await);

    let host = admin
        .create_host()
        .body_map(|body| body.name("web-01"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(host.status, types::HostStatus::Pending);
    assert_eq!(host.last_seen_at, None);

    let issued = admin
        .issue_host_token()
        .host_id(host.id)
        .body_map(|body| body.name("agent"))
        .send()
        .await
        .unwrap()
        .into_inner();
    let agent = client(&app.address, &issued.token);

    let stored = agent
        .push_telemetry()
        .body(snapshot(12.5))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 204);

    let refused = problem(agent.push_telemetry().body(snapshot(250.0)).send().await);
    assert_eq!(refused.status, 422);
    assert_eq!(refused.type_, "tag:nexus-telemetry,2026:problem:validation");
    assert_eq!(refused.errors[0].field, "host.metrics.cpu_percent");

    let rotated = admin
        .rotate_host_token()
        .host_id(host.id)
        .token_id(issued.id)
        .send()
        .await
        .unwrap()
        .into_inner();
    let old = problem(agent.push_telemetry().body(snapshot(1.0)).send().await);
    assert_eq!(old.type_, "tag:nexus-telemetry,2026:problem:unauthorized");
    let revoked = admin
        .revoke_host_token()
        .host_id(host.id)
        .token_id(rotated.id)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let tokens = admin
        .list_host_tokens()
        .host_id(host.id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|token| token.revoked_at.is_some()));
    assert!(
        tokens[0].last_used_at.is_some(),
        "the pushing token was used"
    );

    for name in ["web-02", "web-03", "web-04", "web-05"] {
        admin
            .create_host()
            .body_map(|body| body.name(name))
            .send()
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let mut request = admin.list_hosts().limit(2);
        if let Some(cursor) = cursor.take() {
            request = request.cursor(cursor);
        }
        let page = request.send().await.unwrap().into_inner();
        seen.extend(page.items.iter().map(|host| host.name.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["web-01", "web-02", "web-03", "web-04", "web-05"]);

    let series = admin
        .get_host_metrics()
        .host_id(host.id)
        .since(Utc::now() - Duration::hours(1))
        .until(Utc::now() + Duration::minutes(1))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(series.points.len(), 1);
    assert_eq!(series.points[0].cpu_percent.avg, Some(12.5));
    assert_eq!(series.points[0].load_average.avg, None, "never reported");
    // The range is optional in the document: left out, it is the last hour.
    let last_hour = admin
        .get_host_metrics()
        .host_id(host.id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last_hour.points.len(), 1);
    assert_eq!(last_hour.points[0].cpu_percent.max, Some(12.5));
    let span = last_hour.until - last_hour.since;
    assert!(
        (Duration::hours(1)..=Duration::minutes(61)).contains(&span),
        "an hour, widened to whole minutes: {span}"
    );

    // Refusals are summarised with the token when one was identified, and null when not.
    let stranger = client(&app.address, &format!("nxa_{}", "0".repeat(64)));
    let unknown = problem(stranger.push_telemetry().body(snapshot(1.0)).send().await);
    assert_eq!(unknown.status, 401);
    let report = admin
        .list_auth_failures()
        .send()
        .await
        .unwrap()
        .into_inner();
    let token_of = |reason: types::Reason| {
        let lines: Vec<_> = report.items.iter().filter(|l| l.reason == reason).collect();
        assert_eq!(lines.len(), 1, "{reason:?}: {report:?}");
        lines[0].last_token_id
    };
    assert_eq!(token_of(types::Reason::Revoked), Some(issued.id));
    assert_eq!(token_of(types::Reason::Invalid), None);

    let missing = problem(admin.get_host().host_id(999_999).send().await);
    assert_eq!(
        missing.type_,
        "tag:nexus-telemetry,2026:problem:host-not-found"
    );
}

/// A scratch directory for one generated client, removed when the test passes.
struct Scratch(PathBuf);

impl Scratch {
    fn new(language: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "nexus-{language}-client-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Copies `clients/<language>/<name>` in.
    fn copy(&self, language: &str, name: &str) {
        std::fs::copy(
            Path::new(CLIENTS).join(language).join(name),
            self.0.join(name),
        )
        .unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `program` in `dir` and returns its standard output; fails the test, with everything
/// the program said, unless it succeeds.
async fn run(program: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> String {
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); run the suite with scripts/test"));
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{said}"
    );
    said
}

/// The host a client's flow created, with the CPU value its one stored snapshot holds.
async fn stored_by_flow(app: &TestApp, name: &str) -> (i64, f32) {
    let row = app
        .db
        .query_one(
            "SELECT count(*), min(s.cpu_percent) FROM hosts h
             JOIN host_metric_snapshots s ON s.host_id = h.id WHERE h.name = $1",
            &[&name],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn the_generated_python_client_runs_the_readme_flow_checked_by_mypy_strict() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let scratch = Scratch::new("python");
    scratch.copy("python", "readme_flow.py");
    // No formatter hooks: they are not part of what is checked, and need ruff installed.
    std::fs::write(scratch.0.join("config.yaml"), "post_hooks: []\n").unwrap();
    let generator =
        std::env::var("OPENAPI_PYTHON_CLIENT").unwrap_or_else(|_| "openapi-python-client".into());
    let python = std::env::var("NEXUS_PYTHON").unwrap_or_else(|_| "python3".into());
    let generate = [
        "generate",
        "--path",
        SPEC,
        "--meta",
        "none",
        "--fail-on-warning",
        "--config",
        "config.yaml",
        "--output-path",
        "nexus_telemetry_client",
    ];
    run(&generator, &generate, &scratch.0, &[]).await;
    run(
        &python,
        &["-m", "mypy", "--strict", "readme_flow.py"],
        &scratch.0,
        &[],
    )
    .await;

    let env = [
        ("NEXUS_URL", app.address.as_str()),
        ("NEXUS_ADMIN_TOKEN", &admin),
    ];
    let said = run(&python, &["readme_flow.py"], &scratch.0, &env).await;

    assert!(said.contains("round trip done"), "{said}");
    assert_eq!(stored_by_flow(&app, "py-web-01").await, (1, 12.34));
}

#[tokio::test]
async fn the_generated_typescript_client_runs_the_readme_flow_checked_by_tsc_strict() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let scratch = Scratch::new("typescript");
    scratch.copy("typescript", "readme_flow.mts");
    scratch.copy("typescript", "tsconfig.json");
    let modules = std::env::var("NEXUS_NODE_MODULES").expect(
        "NEXUS_NODE_MODULES names the pinned node modules; run the suite with scripts/test",
    );
    std::os::unix::fs::symlink(&modules, scratch.0.join("node_modules")).unwrap();
    let bin = |tool: &str| format!("{modules}/.bin/{tool}");

    let generate = [SPEC, "--output", "nexus.d.ts"];
    run(&bin("openapi-typescript"), &generate, &scratch.0, &[]).await;
    run(
        &bin("tsc"),
        &["--project", "tsconfig.json"],
        &scratch.0,
        &[],
    )
    .await;

    let env = [
        ("NEXUS_URL", app.address.as_str()),
        ("NEXUS_ADMIN_TOKEN", &admin),
    ];
    let said = run("node", &["out/readme_flow.mjs"], &scratch.0, &env).await;

    assert!(said.contains("round trip done"), "{said}");
    assert_eq!(stored_by_flow(&app, "ts-web-01").await, (1, 12.34));
}
