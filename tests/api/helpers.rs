//! `TestApp`: the real server on port 0 against its own freshly created database.

use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::Parser;
use nexus_telemetry::cli::{Cli, Command};
use nexus_telemetry::config::ServeArgs;
use nexus_telemetry::startup::Application;
use nexus_telemetry::store::Store;
use nexus_test_support::database;
use nexus_test_support::template::{self, Template, drop_test_database};
use serde_json::{Value, json};

/// The rollups (docs/analytics.md), each 1-hour one after its 5-minute one, the order a
/// refresh needs.
pub const ROLLUPS: [&str; 6] = [
    "host_metrics_5m",
    "host_metrics_1h",
    "container_metrics_5m",
    "container_metrics_1h",
    "container_lifecycle_5m",
    "container_lifecycle_1h",
];

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub store: Store,
    pub db: tokio_postgres::Client,
    pub http: reqwest::Client,
}

/// Server settings as the binary would parse them from `args` (defaults included).
pub fn serve_args(database_url: &str, extra: &[&str]) -> ServeArgs {
    let mut argv = vec![
        "nexus-telemetry",
        "serve",
        "--database-url",
        database_url,
        "--listen",
        "127.0.0.1:0",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv)
        .expect("valid test arguments")
        .command
    {
        Command::Serve(args) => *args,
        _ => unreachable!(),
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawns the server with extra `serve` flags, e.g. `["--rate-limit-per-minute", "2"]`.
    pub async fn spawn_with(extra: &[&str]) -> Self {
        Self::spawn_on(fresh_database().await, extra).await
    }

    /// Spawns the server on a fresh database of the Apache edition's cluster
    /// (`NEXUS_APACHE_DATABASE_URL`, which `scripts/test` provisions).
    pub async fn spawn_on_apache_edition() -> Self {
        Self::spawn_on_apache_edition_with(&[]).await
    }

    /// [`Self::spawn_on_apache_edition`] with extra `serve` flags.
    pub async fn spawn_on_apache_edition_with(extra: &[&str]) -> Self {
        let base = std::env::var("NEXUS_APACHE_DATABASE_URL").expect(
            "NEXUS_APACHE_DATABASE_URL must point at TimescaleDB's Apache edition (run scripts/test)",
        );
        Self::spawn_on(fresh_database_on(&base).await, extra).await
    }

    async fn spawn_on(database_url: String, extra: &[&str]) -> Self {
        let args = serve_args(&database_url, extra);
        let app = Application::build(&args).await.expect("the app builds");
        let address = format!("http://{}", app.local_addr);
        tokio::spawn(app.run(std::future::pending()));
        let store = Store::new(&args.db.settings()).expect("store");
        Self {
            address,
            database_url: database_url.clone(),
            store,
            db: connect(&database_url).await,
            http: http_client(),
        }
    }

    pub async fn create_host(&self, name: &str) -> i64 {
        let slug = nexus_telemetry::store::hosts::slugify(name);
        self.store
            .create_host(name, &slug)
            .await
            .expect("host created")
            .id
    }

    /// A host with a fresh token: `(host_id, plaintext token)`.
    pub async fn host_with_token(&self, name: &str) -> (i64, String) {
        let host = self.create_host(name).await;
        let issued = self
            .store
            .issue_agent_token(host, "test", false)
            .await
            .expect("token issued");
        (host, issued.token.plaintext.clone())
    }

    pub fn telemetry_url(&self) -> String {
        format!("{}/agent/telemetry", self.address)
    }

    /// Posts a snapshot; the answer is checked against the document ([`conforming`]).
    pub async fn post_telemetry(&self, token: &str, body: &Value) -> reqwest::Response {
        let response = self
            .http
            .post(self.telemetry_url())
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent");
        conforming("POST", "/agent/telemetry", response).await
    }

    /// The body of `GET {address}{path}` as text, e.g. `/metrics`.
    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("a text body")
    }

    /// A single number from SQL, e.g. `SELECT count(*) FROM hosts`.
    pub async fn count(&self, sql: &str) -> i64 {
        self.db
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// Materializes every rollup bucket there is data for, as the refresh policies would. The
    /// Apache edition has no continuous aggregates (its rollups are views): nothing to do.
    pub async fn refresh_rollups(&self) {
        if !self.is_community_edition().await {
            return;
        }
        for view in ROLLUPS {
            self.db
                .batch_execute(&format!(
                    "CALL refresh_continuous_aggregate('{view}', NULL, NULL)"
                ))
                .await
                .unwrap_or_else(|e| panic!("refresh {view}: {e}"));
        }
    }

    /// Whether this app's database runs the community edition (license `timescale`).
    pub async fn is_community_edition(&self) -> bool {
        self.store.edition().await.expect("edition")
            == nexus_telemetry::store::lifecycle::Edition::Community
    }

    pub async fn host_status(&self, host: i64) -> String {
        self.db
            .query_one("SELECT status FROM hosts WHERE id = $1", &[&host])
            .await
            .unwrap()
            .get(0)
    }

    /// Rows written by ingestion in the whole database: (host rows, containers, container rows).
    pub async fn written(&self) -> (i64, i64, i64) {
        (
            self.count("SELECT count(*) FROM host_metric_snapshots")
                .await,
            self.count("SELECT count(*) FROM containers").await,
            self.count("SELECT count(*) FROM container_metric_snapshots")
                .await,
        )
    }
}

/// A passing test's database goes with it: hundreds of idle databases each keep a TimescaleDB
/// scheduler asking for a worker, and make crash recovery of the local cluster take minutes.
/// A failing test's database stays for inspection, until a run hours later drops it.
impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let url = self.database_url.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with its own can.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(drop_test_database(&url))
        })
        .join();
    }
}

/// An HTTP client for the tests. The agent crate builds reqwest with rustls and no bundled
/// crypto provider; when the workspace is built together that feature reaches these tests too,
/// so the provider the agent uses is installed here as well.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("HTTP client")
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    database::connect(url)
        .await
        .expect("connect to the test database")
}

/// An RFC 3339 timestamp `offset` from now.
pub fn at(offset: Duration) -> String {
    rfc3339(Utc::now() + offset)
}

pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A realistic payload with the given containers (`(container_id, state)` pairs).
pub fn payload(recorded_at: &str, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(id, state)| {
            json!({
                "container_id": id,
                "name": format!("app-{id}"),
                "image": "ghcr.io/acme/app",
                "image_tag": "1.4.2",
                "status": "Up 3 hours",
                "state": state,
                "health_status": "healthy",
                "ports": ["0.0.0.0:8080->80/tcp"],
                "labels": {"com.docker.compose.project": "shop"},
                "metrics": {
                    "cpu_percent": 150.5, "memory_usage_mb": 256, "memory_limit_mb": 1024,
                    "network_rx_bytes": 1000, "network_tx_bytes": 2000,
                    "block_read_bytes": 30, "block_write_bytes": 40
                },
                "started_at": "2024-05-01T09:00:00Z",
                "finished_at": null
            })
        })
        .collect();
    json!({
        "recorded_at": recorded_at,
        "host": {
            "metrics": {
                "cpu_percent": 12.5, "memory_used_mb": 2048, "memory_total_mb": 8192,
                "disk_used_gb": 40, "disk_total_gb": 100, "network_rx_bytes": 123456,
                "network_tx_bytes": 654321, "load_average": 0.42
            },
            "facts": {"cpu_count": 4, "memory_total_mb": 8192, "disk_total_gb": 100, "os": "Debian GNU/Linux 12", "docker_version": "27.1.1"}
        },
        "containers": containers
    })
}

/// A new database cloned from a migrated template, so each test starts from the real schema.
pub async fn fresh_database() -> String {
    let base = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must point at a TimescaleDB server (run scripts/test)");
    fresh_database_on(&base).await
}

/// [`fresh_database`] on the server of `base`.
pub async fn fresh_database_on(base: &str) -> String {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        Template::of_migrations(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/sql")))
    });
    template
        .copy(base, |url| async move {
            let settings = serve_args(&url, &[]).db.settings();
            Store::new(&settings)?.migrate().await
        })
        .await
}

/// A new database with nothing in it (TimescaleDB available), for migrating step by step.
pub async fn empty_database() -> String {
    template::empty_database(&std::env::var("DATABASE_URL").expect("DATABASE_URL")).await
}

/// `response`, after checking that its body is what the document declares for `method path`
/// and its status ([`crate::response_schema`]); rebuilt from what was read, so callers use it
/// as they would the original.
pub async fn conforming(
    method: &str,
    path: &str,
    response: reqwest::Response,
) -> reqwest::Response {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("JSON body: {}", String::from_utf8_lossy(&bytes)))
    };
    assert_conforms(method, path, status.as_u16(), &headers, &body);
    let mut rebuilt = poem::http::Response::new(bytes);
    *rebuilt.status_mut() = status;
    *rebuilt.headers_mut() = headers;
    reqwest::Response::from(rebuilt)
}

fn assert_conforms(
    method: &str,
    path: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) {
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let broken = crate::response_schema::violations(method, path, status, content_type, body);
    assert!(
        broken.is_empty(),
        "the answer breaks the document:\n{}\n{body}",
        broken.join("\n")
    );
}

/// An answer of the admin API: status, headers and the JSON body (`Null` when empty).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The field paths of a problem's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    /// A fresh admin token (plaintext), created the way `admin-token create` does.
    pub async fn admin_token(&self) -> String {
        self.store
            .create_admin_token("test")
            .await
            .expect("admin token created")
            .token
            .plaintext
            .clone()
    }

    /// Calls the admin API at `path` (under `/api/v1`) with a bearer and an optional JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        call(&self.http, &self.address, method, path, bearer, body).await
    }

    /// Another server process on this app's database (its own pool, cache and listener).
    pub async fn spawn_another_server(&self) -> String {
        let args = serve_args(&self.database_url, &["--no-migrate"]);
        let app = Application::build(&args).await.expect("the app builds");
        let address = format!("http://{}", app.local_addr);
        tokio::spawn(app.run(std::future::pending()));
        address
    }
}

/// Calls `{address}/api/v1{path}`, and checks that the answer is what the document declares
/// for it ([`crate::response_schema`]).
pub async fn call(
    http: &reqwest::Client,
    address: &str,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let operation = format!("{method} /api/v1{path}");
    let mut request = http.request(method, format!("{address}/api/v1{path}"));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("JSON body: {}", String::from_utf8_lossy(&bytes)))
    };
    let (method, path) = operation.split_once(' ').expect("method and path");
    assert_conforms(method, path, status, &headers, &body);
    Answer {
        status,
        headers,
        body,
    }
}
