//! Webhooks (issue 26): the endpoints API, and deliveries to real receivers on loopback that
//! verify every signature with the `standardwebhooks` package from PyPI
//! (tests/api/webhook_receiver.py, run on `$NEXUS_PYTHON`, which scripts/test provides).

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::alert_evaluation::{FAST, disable_default_rules, rule};
use crate::helpers::{TestApp, at, call, fresh_database, http_client, payload};

/// A webhook receiver process; what it received, one JSON value per request.
struct Receiver {
    url: String,
    secret_file: std::path::PathBuf,
    requests: Arc<Mutex<Vec<Value>>>,
    _child: tokio::process::Child,
}

impl Receiver {
    /// Starts `webhook_receiver.py` with `flags` (`--fail-first`, `--delay`, …).
    async fn start(flags: &[&str]) -> Self {
        let python = std::env::var("NEXUS_PYTHON").unwrap_or_else(|_| "python3".into());
        let secret_file =
            std::env::temp_dir().join(format!("nexus-webhook-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&secret_file, "whsec_unset").unwrap();
        let mut child = tokio::process::Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/api/webhook_receiver.py"
            ))
            .arg(&secret_file)
            .args(flags)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {python} ({e}); run the suite with scripts/test")
            });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(StdDuration::from_secs(20), lines.next_line())
            .await
            .expect("the receiver starts (is standardwebhooks installed? run scripts/test)")
            .unwrap()
            .expect("the receiver prints its port");
        let port = first.strip_prefix("port ").expect("`port <n>`").to_owned();
        let requests: Arc<Mutex<Vec<Value>>> = Arc::default();
        let recorded = requests.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                recorded
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            secret_file,
            requests,
            _child: child,
        }
    }

    fn use_secret(&self, secret: &str) {
        std::fs::write(&self.secret_file, secret).unwrap();
    }

    fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the requests received, or panics after `limit`.
    async fn wait_until(&self, limit: StdDuration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not get what was expected within {limit:?}: {requests:#?}"
            );
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.secret_file);
    }
}

/// The requests the receiver answered 2xx.
fn acknowledged(requests: &[Value]) -> Vec<&Value> {
    requests
        .iter()
        .filter(|r| {
            r["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
        })
        .collect()
}

/// Creates an endpoint through the API for `receiver` and hands it the secret; the endpoint.
async fn subscribe(
    http: &reqwest::Client,
    address: &str,
    admin: &str,
    receiver: &Receiver,
    kinds: &[&str],
) -> Value {
    let created = call(
        http,
        address,
        Method::POST,
        "/webhooks",
        Some(admin),
        Some(&json!({"url": receiver.url, "event_kinds": kinds})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    receiver.use_secret(created.body["secret"].as_str().unwrap());
    created.body
}

async fn deliveries(app: &TestApp, admin: &str, webhook: i64) -> Vec<Value> {
    let listed = app
        .admin(
            Method::GET,
            &format!("/webhooks/{webhook}/deliveries"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body["items"].as_array().unwrap().clone()
}

/// Posts a snapshot of host `token` with `containers` as `(id, state)`, `seconds` from now.
async fn post(
    http: &reqwest::Client,
    address: &str,
    token: &str,
    seconds: i64,
    containers: &[(&str, &str)],
) {
    let response = http
        .post(format!("{address}/agent/telemetry"))
        .bearer_auth(token)
        .json(&payload(&at(Duration::seconds(seconds)), containers))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

/// A container of host `token` going running → exited: one `state_changed` event.
async fn container_dies(app: &TestApp, token: &str) {
    post(&app.http, &app.address, token, -20, &[("c1", "running")]).await;
    post(&app.http, &app.address, token, -10, &[("c1", "exited")]).await;
}

const LONG: StdDuration = StdDuration::from_secs(30);

#[tokio::test]
async fn a_delivery_verifies_with_the_standard_webhooks_library() {
    let app = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[]).await;
    let webhook = subscribe(
        &app.http,
        &app.address,
        &admin,
        &receiver,
        &["state_changed"],
    )
    .await;
    let (_, token) = app.host_with_token("web-01").await;

    container_dies(&app, &token).await;

    let requests = receiver.wait_until(LONG, |r| !r.is_empty()).await;
    let request = &requests[0];
    assert_eq!(request["verified"], true, "{request}");
    assert_eq!(request["status"], 204);
    let body = &request["body"];
    assert_eq!(body["type"], "state_changed");
    assert_eq!(body["data"]["kind"], "state_changed");
    assert_eq!(body["data"]["host_name"], "web-01");
    assert_eq!(body["data"]["container_name"], "app-c1");
    assert_eq!(body["data"]["container_id"], "c1");
    assert_eq!(
        (
            body["data"]["from_value"].as_str(),
            body["data"]["to_value"].as_str()
        ),
        (Some("running"), Some("exited"))
    );
    assert_eq!(body["timestamp"], body["data"]["at"]);
    // Only the subscribed kind: the host's `online` and the container's `created` are not sent.
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert_eq!(receiver.requests().len(), 1, "{:#?}", receiver.requests());

    let listed = deliveries(&app, &admin, webhook["id"].as_i64().unwrap()).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["state"], "delivered");
    assert_eq!(listed[0]["attempts"], 1);
    assert_eq!(listed[0]["last_status_code"], 204);
    assert_eq!(listed[0]["webhook_id"], request["id"]);
    assert_eq!(listed[0]["event_id"], body["data"]["id"]);
}

#[tokio::test]
async fn a_slack_endpoint_gets_one_readable_line() {
    let app = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[]).await;
    let created = app
        .admin(
            Method::POST,
            "/webhooks",
            Some(&admin),
            Some(
                &json!({"url": receiver.url, "event_kinds": ["state_changed"], "format": "slack"}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    receiver.use_secret(created.body["secret"].as_str().unwrap());
    let (_, token) = app.host_with_token("web-01").await;

    container_dies(&app, &token).await;

    let requests = receiver.wait_until(LONG, |r| !r.is_empty()).await;
    assert_eq!(requests[0]["verified"], true);
    assert_eq!(
        requests[0]["body"],
        json!({"text": "[web-01] container app-c1 running → exited"})
    );
}

#[tokio::test]
async fn a_receiver_that_fails_then_recovers_gets_the_delivery_after_growing_backoff_under_one_webhook_id()
 {
    let app =
        TestApp::spawn_with(&["--allow-private-webhooks", "--webhook-retry-base-ms", "200"]).await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&["--fail-first", "2", "--status", "503"]).await;
    let webhook = subscribe(
        &app.http,
        &app.address,
        &admin,
        &receiver,
        &["state_changed"],
    )
    .await;
    let (_, token) = app.host_with_token("web-01").await;

    container_dies(&app, &token).await;

    let requests = receiver.wait_until(LONG, |r| r.len() >= 3).await;
    let statuses: Vec<&Value> = requests.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [&json!(503), &json!(503), &json!(204)]);
    let ids: HashSet<&Value> = requests.iter().map(|r| &r["id"]).collect();
    assert_eq!(
        ids.len(),
        1,
        "one webhook-id on every attempt: {requests:#?}"
    );
    assert!(requests.iter().all(|r| r["verified"] == true));
    // Retries 1 and 6 units (200 ms) after the failures, ±20%.
    let times: Vec<f64> = requests
        .iter()
        .map(|r| r["received"].as_f64().unwrap())
        .collect();
    let (first, second) = (times[1] - times[0], times[2] - times[1]);
    assert!((0.15..1.0).contains(&first), "first retry after {first} s");
    assert!(
        (0.9..3.0).contains(&second),
        "second retry after {second} s"
    );

    // The outcome is recorded just after the receiver's answer.
    let deadline = Instant::now() + LONG;
    let listed = loop {
        let listed = deliveries(&app, &admin, webhook["id"].as_i64().unwrap()).await;
        if listed[0]["state"] == "delivered" {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "not recorded delivered: {listed:#?}"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    };
    assert_eq!(listed[0]["attempts"], 3);
    assert_eq!(listed[0]["last_status_code"], 204);
    assert_eq!(listed[0]["last_error"], Value::Null);
}

#[tokio::test]
async fn a_delivery_whose_schedule_runs_out_is_failed_with_its_last_status_and_error_and_redelivers_under_the_same_id()
 {
    let app =
        TestApp::spawn_with(&["--allow-private-webhooks", "--webhook-retry-base-ms", "1"]).await;
    let admin = app.admin_token().await;
    // Eleven attempts (the first and ten retries) fail; the redelivery's first one succeeds.
    let receiver = Receiver::start(&["--fail-first", "11", "--status", "500"]).await;
    let webhook = subscribe(
        &app.http,
        &app.address,
        &admin,
        &receiver,
        &["state_changed"],
    )
    .await;
    let webhook = webhook["id"].as_i64().unwrap();
    let (_, token) = app.host_with_token("web-01").await;

    container_dies(&app, &token).await;

    // 1+6+24+…+5760 units of 1 ms: about 17 s of retries.
    let deadline = Instant::now() + StdDuration::from_secs(60);
    let failed = loop {
        let listed = deliveries(&app, &admin, webhook).await;
        if listed.first().is_some_and(|d| d["state"] == "failed") {
            break listed[0].clone();
        }
        assert!(Instant::now() < deadline, "not failed in time: {listed:#?}");
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    };
    assert_eq!(failed["attempts"], 11);
    assert_eq!(failed["last_status_code"], 500);
    assert_eq!(failed["last_error"], "the receiver answered 500");
    assert_eq!(failed["next_attempt_at"], Value::Null);
    assert_eq!(receiver.requests().len(), 11);
    let filtered = app
        .admin(
            Method::GET,
            &format!("/webhooks/{webhook}/deliveries?state=failed"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 1);

    let path = format!("/webhooks/{webhook}/deliveries/{}/redeliver", failed["id"]);
    let redelivered = app.admin(Method::POST, &path, Some(&admin), None).await;
    assert_eq!(redelivered.status, 202, "{}", redelivered.body);
    assert_eq!(redelivered.body["state"], "pending");
    assert_eq!(redelivered.body["webhook_id"], failed["webhook_id"]);

    let requests = receiver.wait_until(LONG, |r| r.len() >= 12).await;
    assert_eq!(requests[11]["status"], 204);
    assert_eq!(requests[11]["id"], failed["webhook_id"]);
    let deadline = Instant::now() + LONG;
    while deliveries(&app, &admin, webhook).await[0]["state"] != "delivered" {
        assert!(Instant::now() < deadline, "the redelivery is recorded");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let again = app
        .admin(
            Method::POST,
            &format!("/webhooks/{webhook}/deliveries/999999/redeliver"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(again.status, 404);
}

/// The server binary, run as its own process so that it can be killed.
struct ServerProcess {
    address: String,
    child: tokio::process::Child,
    /// Its log (stderr), line by line.
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    async fn start(database_url: &str, extra: &[&str]) -> Self {
        Self::start_logging(database_url, extra, "warn").await
    }

    /// Starts the server with `NEXUS_LOG` at `level`, keeping its log.
    async fn start_logging(database_url: &str, extra: &[&str], level: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
            .arg("serve")
            .args(extra)
            .env("DATABASE_URL", database_url)
            .env("NEXUS_LISTEN", format!("127.0.0.1:{port}"))
            .env("NEXUS_LOG", level)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        let address = format!("http://127.0.0.1:{port}");
        let http = http_client();
        let deadline = Instant::now() + StdDuration::from_secs(30);
        while http
            .get(format!("{address}/readyz"))
            .send()
            .await
            .map(|r| r.status())
            .ok()
            != Some(reqwest::StatusCode::OK)
        {
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        Self {
            address,
            child,
            log,
        }
    }

    fn kill(&mut self) {
        let pid = self.child.id().expect("running").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_delivery_delivers_every_event_after_restart_under_the_same_webhook_ids()
 {
    let url = fresh_database().await;
    let flags = ["--allow-private-webhooks", "--webhook-timeout-seconds", "2"];
    let mut server = ServerProcess::start(&url, &flags).await;
    let store =
        nexus_telemetry::store::Store::new(&crate::helpers::serve_args(&url, &[]).db.settings())
            .unwrap();
    let admin = store
        .create_admin_token("test")
        .await
        .unwrap()
        .token
        .plaintext
        .clone();
    let host = store.create_host("web-01", "web-01").await.unwrap();
    let token = store
        .issue_agent_token(host.id, "t", false)
        .await
        .unwrap()
        .token
        .plaintext
        .clone();
    // The first request is held open until long after the server is gone.
    let receiver = Receiver::start(&["--hold-first", "60"]).await;
    let http = http_client();
    subscribe(&http, &server.address, &admin, &receiver, &[]).await;
    let db = crate::helpers::connect(&url).await;

    // `online`, then `created` for each of three containers: four events, one endpoint.
    post(
        &http,
        &server.address,
        &token,
        -5,
        &[("a", "running"), ("b", "running"), ("c", "running")],
    )
    .await;
    let deadline = Instant::now() + LONG;
    loop {
        let in_flight: i64 = db
            .query_one(
                "SELECT count(*) FROM webhook_deliveries WHERE locked_until > now()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if in_flight == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "a delivery is in flight");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    server.kill();
    let _ = server.child.wait().await;
    let restarted = ServerProcess::start(&url, &flags).await;

    let ids: Vec<String> = db
        .query("SELECT id FROM webhook_deliveries ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| format!("msg_{}", row.get::<_, i64>(0)))
        .collect();
    assert_eq!(ids.len(), 4, "one delivery per event: {ids:?}");
    let requests = receiver
        .wait_until(LONG, |r| acknowledged(r).len() >= 4)
        .await;
    let mut answered: Vec<&str> = acknowledged(&requests)
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    answered.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(
        answered, expected,
        "each webhook-id acknowledged exactly once: {requests:#?}"
    );
    // The held request's id came again after the restart: the same id, not a new message.
    let received: HashSet<&str> = requests.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(received.len(), 4, "{requests:#?}");
    assert!(requests.iter().all(|r| r["verified"] == true));
    // The server records each outcome just after the receiver's answer.
    let deadline = Instant::now() + LONG;
    loop {
        let delivered: i64 = db
            .query_one(
                "SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if delivered == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{delivered} of 4 recorded delivered"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_never_deliver_one_delivery_twice_nor_queue_an_event_twice() {
    let app = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let other = crate::helpers::serve_args(
        &app.database_url,
        &["--no-migrate", "--allow-private-webhooks"],
    );
    let other = nexus_telemetry::startup::Application::build(&other)
        .await
        .unwrap();
    let other_address = format!("http://{}", other.local_addr);
    tokio::spawn(other.run(std::future::pending()));
    let admin = app.admin_token().await;
    // Each answer takes 100 ms, so claims by both processes overlap in time.
    let first = Receiver::start(&["--delay", "0.1"]).await;
    let second = Receiver::start(&["--delay", "0.1"]).await;
    subscribe(&app.http, &app.address, &admin, &first, &[]).await;
    subscribe(&app.http, &other_address, &admin, &second, &[]).await;

    // Hosts post through both processes: twenty containers appear, twice `online`.
    let (_, one) = app.host_with_token("web-01").await;
    let (_, two) = app.host_with_token("web-02").await;
    let containers: Vec<(String, &str)> = (0..10).map(|i| (format!("c{i}"), "running")).collect();
    let containers: Vec<(&str, &str)> =
        containers.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    post(&app.http, &app.address, &one, -5, &containers).await;
    post(&app.http, &other_address, &two, -5, &containers).await;

    for receiver in [&first, &second] {
        receiver
            .wait_until(StdDuration::from_secs(60), |r| r.len() >= 22)
            .await;
        tokio::time::sleep(StdDuration::from_millis(1500)).await;
        let requests = receiver.requests();
        assert_eq!(requests.len(), 22, "every event once: {requests:#?}");
        let mut per_id: HashMap<&str, usize> = HashMap::new();
        for request in &requests {
            *per_id.entry(request["id"].as_str().unwrap()).or_default() += 1;
            assert_eq!(request["verified"], true);
        }
        assert!(
            per_id.values().all(|n| *n == 1),
            "no webhook-id twice: {per_id:?}"
        );
        let events: HashSet<i64> = requests
            .iter()
            .map(|r| r["body"]["data"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(events.len(), 22);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        44
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'")
            .await,
        44
    );
}

#[tokio::test]
async fn a_slow_receiver_does_not_delay_another_endpoints_deliveries() {
    let app = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let admin = app.admin_token().await;
    let slow = Receiver::start(&["--delay", "5"]).await;
    let fast = Receiver::start(&[]).await;
    subscribe(&app.http, &app.address, &admin, &slow, &[]).await;
    subscribe(&app.http, &app.address, &admin, &fast, &[]).await;
    let (_, token) = app.host_with_token("web-01").await;

    let started = Instant::now();
    // `online` and three `created`.
    post(
        &app.http,
        &app.address,
        &token,
        -5,
        &[("a", "running"), ("b", "running"), ("c", "running")],
    )
    .await;

    fast.wait_until(StdDuration::from_secs(4), |r| r.len() >= 4)
        .await;
    let elapsed = started.elapsed();
    assert!(elapsed < StdDuration::from_secs(4), "{elapsed:?}");
    // The slow one has answered none yet: its first request is still being held.
    assert!(slow.requests().is_empty(), "{:#?}", slow.requests());
}

#[tokio::test]
async fn an_endpoint_on_an_internal_address_is_refused_with_the_reason_unless_allowed() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let cases = [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private (RFC 1918)"),
        ("http://192.168.0.10/hook", "private (RFC 1918)"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[fd00::1]/hook", "unique local"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
    ];
    for (url, range) in cases {
        let refused = app
            .admin(
                Method::POST,
                "/webhooks",
                Some(&admin),
                Some(&json!({"url": url})),
            )
            .await;
        assert_eq!(refused.status, 422, "{url}: {}", refused.body);
        assert_eq!(refused.error_fields(), ["url"], "{url}");
        let message = refused.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(range), "{url}: {message}");
        assert!(message.contains("--allow-private-webhooks"), "{message}");
    }
    for (url, why) in [
        ("ftp://example.com/hook", "http or https"),
        ("not a url", "absolute URL"),
        ("https://user:pw@example.com/hook", "credentials"),
    ] {
        let refused = app
            .admin(
                Method::POST,
                "/webhooks",
                Some(&admin),
                Some(&json!({"url": url})),
            )
            .await;
        assert_eq!(refused.status, 422, "{url}");
        let message = refused.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(why), "{url}: {message}");
    }
    let bad = app
        .admin(
            Method::POST,
            "/webhooks",
            Some(&admin),
            Some(&json!({"url": "https://example.com", "event_kinds": ["exploded"], "format": "xml"})),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    let mut fields = bad.error_fields();
    fields.sort();
    assert!(
        fields.iter().any(|f| f.starts_with("event_kinds")) && fields.iter().any(|f| f == "format"),
        "{fields:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM webhook_endpoints").await, 0);

    let allowed = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let admin = allowed.admin_token().await;
    let created = allowed
        .admin(
            Method::POST,
            "/webhooks",
            Some(&admin),
            Some(&json!({"url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
}

#[tokio::test]
async fn a_delivery_to_a_name_now_resolving_to_an_internal_address_is_refused_at_delivery_time() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[]).await;
    // Saved while public (a documentation address), then pointed at loopback behind the
    // API's back, as DNS rebinding would.
    let created = app
        .admin(
            Method::POST,
            "/webhooks",
            Some(&admin),
            Some(&json!({"url": "http://192.0.2.1/hook", "event_kinds": ["state_changed"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let webhook = created.body["id"].as_i64().unwrap();
    let local = receiver.url.replace("127.0.0.1", "localhost");
    app.db
        .execute("UPDATE webhook_endpoints SET url = $1", &[&local])
        .await
        .unwrap();
    let (_, token) = app.host_with_token("web-01").await;

    container_dies(&app, &token).await;

    let deadline = Instant::now() + LONG;
    let refused = loop {
        let listed = deliveries(&app, &admin, webhook).await;
        if listed.first().is_some_and(|d| d["last_error"].is_string()) {
            break listed[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "an attempt is recorded: {listed:#?}"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    };
    let error = refused["last_error"].as_str().unwrap();
    assert!(error.contains("loopback"), "{error}");
    assert_eq!(refused["state"], "pending");
    assert_eq!(refused["last_status_code"], Value::Null);
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn the_webhooks_api_creates_lists_updates_rotates_and_deletes_and_shows_a_secret_only_once() {
    let app = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let admin = app.admin_token().await;
    let created = app
        .admin(
            Method::POST,
            "/webhooks",
            Some(&admin),
            Some(&json!({"url": "http://127.0.0.1:9/hook", "event_kinds": ["offline", "offline", "state_changed"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(
        secret.len(),
        "whsec_".len() + 44,
        "32 bytes in base64: {secret}"
    );
    assert_eq!(
        created.body["event_kinds"],
        json!(["offline", "state_changed"])
    );
    assert_eq!(created.body["format"], "json");
    assert_eq!(created.body["enabled"], true);

    let listed = app
        .admin(Method::GET, "/webhooks", Some(&admin), None)
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains(&secret));
    let shown = app
        .admin(Method::GET, &format!("/webhooks/{id}"), Some(&admin), None)
        .await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.get("secret").is_none());

    let updated = app
        .admin(
            Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(&admin),
            Some(&json!({"enabled": false, "event_kinds": [], "format": "slack"})),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["enabled"], false);
    assert_eq!(updated.body["event_kinds"], json!([]));
    assert_eq!(updated.body["format"], "slack");
    assert_eq!(updated.body["url"], "http://127.0.0.1:9/hook");

    let rotated = app
        .admin(
            Method::POST,
            &format!("/webhooks/{id}/rotate-secret"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new_secret = rotated.body["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);

    let unauthenticated = app.admin(Method::GET, "/webhooks", None, None).await;
    assert_eq!(unauthenticated.status, 401);
    let deleted = app
        .admin(
            Method::DELETE,
            &format!("/webhooks/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    for path in [
        format!("/webhooks/{id}"),
        format!("/webhooks/{id}/deliveries"),
    ] {
        let gone = app.admin(Method::GET, &path, Some(&admin), None).await;
        assert_eq!(gone.status, 404, "{path}");
    }
    // Analysts may not read endpoints (their secrets).
    let granted: bool = app
        .db
        .query_one(
            "SELECT has_table_privilege('nexus_analyst', 'webhook_endpoints', 'SELECT')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!granted);
}

#[tokio::test]
async fn a_disabled_endpoint_gets_nothing_and_an_endpoint_gets_only_events_after_its_creation() {
    let app = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let admin = app.admin_token().await;
    let (_, token) = app.host_with_token("web-01").await;
    // Before any endpoint exists.
    post(&app.http, &app.address, &token, -30, &[("c1", "running")]).await;
    let receiver = Receiver::start(&[]).await;
    let webhook = subscribe(&app.http, &app.address, &admin, &receiver, &[]).await;
    let id = webhook["id"].as_i64().unwrap();
    let disabled = app
        .admin(
            Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(&admin),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.status, 200);
    post(&app.http, &app.address, &token, -20, &[("c1", "exited")]).await;
    tokio::time::sleep(StdDuration::from_millis(2000)).await;
    assert!(receiver.requests().is_empty(), "{:#?}", receiver.requests());

    let enabled = app
        .admin(
            Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(&admin),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(enabled.status, 200);
    post(&app.http, &app.address, &token, -10, &[("c1", "running")]).await;
    let requests = receiver.wait_until(LONG, |r| !r.is_empty()).await;
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    let requests = if requests.len() == 1 {
        receiver.requests()
    } else {
        requests
    };
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0]["body"]["data"]["to_value"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_webhook_secret_appears_in_the_debug_log_of_creating_rotating_and_delivering() {
    let url = fresh_database().await;
    let server = ServerProcess::start_logging(&url, &["--allow-private-webhooks"], "debug").await;
    let store =
        nexus_telemetry::store::Store::new(&crate::helpers::serve_args(&url, &[]).db.settings())
            .unwrap();
    let admin = store
        .create_admin_token("test")
        .await
        .unwrap()
        .token
        .plaintext
        .clone();
    let host = store.create_host("web-01", "web-01").await.unwrap();
    let token = store
        .issue_agent_token(host.id, "t", false)
        .await
        .unwrap()
        .token
        .plaintext
        .clone();
    let http = http_client();
    // Fails once, so a retry is logged too.
    let receiver = Receiver::start(&["--fail-first", "1"]).await;
    let first = subscribe(&http, &server.address, &admin, &receiver, &[]).await;
    let rotated = call(
        &http,
        &server.address,
        Method::POST,
        &format!("/webhooks/{}/rotate-secret", first["id"]),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(rotated.status, 200);
    let secrets = [
        first["secret"].as_str().unwrap().to_owned(),
        rotated.body["secret"].as_str().unwrap().to_owned(),
    ];
    receiver.use_secret(&secrets[1]);
    post(&http, &server.address, &token, -5, &[("a", "running")]).await;
    receiver
        .wait_until(LONG, |r| acknowledged(r).len() >= 2)
        .await;

    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains("webhook attempt"),
        "the deliveries were logged:\n{log}"
    );
    for secret in &secrets {
        // The secret as shown, and its key alone (what is decoded and used).
        let key = secret.strip_prefix("whsec_").unwrap();
        assert!(!log.contains(key), "a webhook secret is in the log:\n{log}");
    }
}

#[tokio::test]
async fn a_receiver_answering_410_gone_gets_its_endpoint_disabled_and_the_delivery_failed() {
    let app = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&["--fail-first", "1", "--status", "410"]).await;
    let webhook = subscribe(
        &app.http,
        &app.address,
        &admin,
        &receiver,
        &["state_changed"],
    )
    .await;
    let webhook = webhook["id"].as_i64().unwrap();
    let (_, token) = app.host_with_token("web-01").await;

    container_dies(&app, &token).await;

    let deadline = Instant::now() + LONG;
    let failed = loop {
        let listed = deliveries(&app, &admin, webhook).await;
        if listed.first().is_some_and(|d| d["state"] == "failed") {
            break listed[0].clone();
        }
        assert!(Instant::now() < deadline, "not failed in time: {listed:#?}");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    };
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["last_status_code"], 410);
    let shown = app
        .admin(
            Method::GET,
            &format!("/webhooks/{webhook}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(shown.body["enabled"], false);
    assert_eq!(receiver.requests().len(), 1);
}

/// An alert of the default rule `host offline` about `host`, written `pending` as the evaluator
/// opens one (no event: nothing has fired yet); its id.
async fn pending_alert(app: &TestApp, host: i64) -> i64 {
    app.db
        .query_one(
            "INSERT INTO alerts (rule_id, host_id, fingerprint, state, pending_since)
             SELECT id, $1, alert_fingerprint(id, $1, NULL), 'pending', now()
             FROM alert_rules WHERE name = 'host offline'
             RETURNING id",
            &[&host],
        )
        .await
        .unwrap()
        .get(0)
}

/// Moves alert `id` to `to` (`firing` or `resolved`) with its event, as the evaluator does.
async fn transition(app: &TestApp, id: i64, to: &str) {
    app.db
        .execute(
            "WITH alert AS (
                 UPDATE alerts SET state = $2,
                     started_at = CASE WHEN $2 = 'firing' THEN now() ELSE started_at END,
                     resolved_at = CASE WHEN $2 = 'resolved' THEN now() END
                 WHERE id = $1
                 RETURNING id, host_id, container_id
             )
             INSERT INTO events (kind, host_id, container_id, alert_id, from_value, to_value)
             SELECT 'alert_' || $2, host_id, container_id, id,
                    CASE WHEN $2 = 'firing' THEN 'pending' ELSE 'firing' END, $2
             FROM alert",
            &[&id, &to],
        )
        .await
        .unwrap();
}

/// Silences alert `id` through the API until `until` (null clears it).
async fn silence(app: &TestApp, admin: &str, id: i64, until: Value) {
    let answer = app
        .admin(
            Method::POST,
            &format!("/alerts/{id}/silence"),
            Some(admin),
            Some(&json!({ "until": until })),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// `(alert_id, type)` of each request the receiver answered 2xx, in arrival order.
fn alert_deliveries(requests: &[Value]) -> Vec<(i64, String)> {
    acknowledged(requests)
        .iter()
        .map(|r| {
            (
                r["body"]["data"]["alert_id"].as_i64().unwrap(),
                r["body"]["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const ALERT_KINDS: [&str; 3] = ["alert_firing", "alert_acknowledged", "alert_resolved"];

#[tokio::test]
async fn a_silenced_alerts_firing_acknowledgement_and_resolution_reach_no_webhook_while_an_unsilenced_ones_do()
 {
    let app = TestApp::spawn_with(&[
        "--allow-private-webhooks",
        "--alert-evaluation-interval-seconds",
        "0",
    ])
    .await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[]).await;
    subscribe(&app.http, &app.address, &admin, &receiver, &ALERT_KINDS).await;
    let silenced = pending_alert(&app, app.create_host("web-01").await).await;
    let loud = pending_alert(&app, app.create_host("web-02").await).await;
    silence(&app, &admin, silenced, json!("2099-01-01T00:00:00Z")).await;

    // The silenced alert's events come first: once the other's last one arrives, the fan-out
    // (which reads in id order) has passed them all.
    transition(&app, silenced, "firing").await;
    transition(&app, loud, "firing").await;
    for id in [silenced, loud] {
        let answer = app
            .admin(
                Method::POST,
                &format!("/alerts/{id}/acknowledge"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    transition(&app, silenced, "resolved").await;
    transition(&app, loud, "resolved").await;

    let requests = receiver
        .wait_until(LONG, |r| {
            alert_deliveries(r).contains(&(loud, "alert_resolved".into()))
        })
        .await;
    assert_eq!(
        alert_deliveries(&requests),
        [
            (loud, "alert_firing".into()),
            (loud, "alert_acknowledged".into()),
            (loud, "alert_resolved".into()),
        ],
        "only the unsilenced alert's events are delivered"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
             WHERE e.alert_id = {silenced}"
        ))
        .await,
        0,
        "nothing of the silenced alert is queued, to be sent later or otherwise"
    );
}

#[tokio::test]
async fn a_silence_that_ends_while_the_alert_fires_brings_back_nothing_it_held_and_lets_the_resolution_through()
 {
    let app = TestApp::spawn_with(&[
        "--allow-private-webhooks",
        "--alert-evaluation-interval-seconds",
        "0",
    ])
    .await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[]).await;
    subscribe(&app.http, &app.address, &admin, &receiver, &ALERT_KINDS).await;
    let alert = pending_alert(&app, app.create_host("web-01").await).await;
    let ends = chrono::Utc::now() + Duration::seconds(3);
    silence(&app, &admin, alert, json!(ends.to_rfc3339())).await;
    transition(&app, alert, "firing").await;
    // The silence ends; the alert still fires.
    tokio::time::sleep(
        (ends - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
            .max(StdDuration::from_millis(100))
            + StdDuration::from_millis(200),
    )
    .await;
    transition(&app, alert, "resolved").await;

    let requests = receiver
        .wait_until(LONG, |r| !alert_deliveries(r).is_empty())
        .await;
    // A moment for anything else that might come (the firing, were it queued).
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert_eq!(
        alert_deliveries(&receiver.requests()),
        [(alert, "alert_resolved".into())],
        "the firing held back while silenced is not sent when the silence ends: {requests:#?}"
    );
}

#[tokio::test]
async fn an_alert_firing_webhook_names_its_rule_severity_summary_and_value_and_fits_the_published_schema()
 {
    let app = TestApp::spawn_with(&[&FAST[..], &["--allow-private-webhooks"]].concat()).await;
    disable_default_rules(&app).await;
    rule(
        &app,
        "shop down",
        "container_not_running",
        &[
            ("for_seconds", "0"),
            ("severity", "'critical'"),
            ("summary", "'The shop stopped'"),
        ],
    )
    .await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[]).await;
    subscribe(
        &app.http,
        &app.address,
        &admin,
        &receiver,
        &["alert_firing"],
    )
    .await;
    let (_, token) = app.host_with_token("web-01").await;

    post(&app.http, &app.address, &token, -20, &[("c1", "running")]).await;
    let mut exited = payload(&at(Duration::seconds(-10)), &[("c1", "exited")]);
    exited["containers"][0]["exit_code"] = json!(137);
    let response = app.post_telemetry(&token, &exited).await;
    assert_eq!(response.status(), 204);

    let requests = receiver.wait_until(LONG, |r| !r.is_empty()).await;
    // Another evaluation cycle or two: still one delivery.
    tokio::time::sleep(StdDuration::from_millis(2500)).await;
    let requests = {
        let all = receiver.requests();
        assert_eq!(all.len(), 1, "one firing, one delivery: {all:#?}");
        assert_eq!(all, requests);
        all
    };
    assert_eq!(requests[0]["verified"], true);
    let body = &requests[0]["body"];
    assert_eq!(body["type"], "alert_firing");
    let data = &body["data"];
    assert_eq!(
        (
            &data["rule_name"],
            &data["severity"],
            &data["summary"],
            &data["value"],
        ),
        (
            &json!("shop down"),
            &json!("critical"),
            &json!("The shop stopped"),
            &json!(137.0),
        ),
        "{body:#}"
    );
    assert_eq!(data["host_name"], "web-01");
    assert_eq!(data["container_name"], "app-c1");
    assert_eq!(
        crate::response_schema::schema_violations("WebhookEvent", body),
        Vec::<String>::new(),
        "the body breaks the published WebhookEvent schema"
    );
}
