//! Delivery to a real Prometheus Alertmanager (Debian's, `NEXUS_ALERTMANAGER_BIN`, which
//! scripts/alertmanager installs): each test starts its own on a free loopback port with its own
//! storage, stands for the evaluator by writing alerts and their events with SQL (or, in one,
//! lets the evaluator fire from posted snapshots), and checks what Alertmanager holds through
//! its own API.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use nexus_telemetry::startup::Application;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

use crate::alert_evaluation::FAST;
use crate::helpers::{TestApp, at, http_client, payload, serve_args};

/// The tests write their alerts themselves (standing for the evaluator), which must not resolve
/// them: evaluation is off in every server here but the one test's that lets it fire.
const NO_EVALUATION: [&str; 2] = ["--alert-evaluation-interval-seconds", "0"];

/// An Alertmanager process on loopback; killed, its directory removed, when dropped.
struct Alertmanager {
    /// With the credentials when it requires them.
    url: String,
    port: u16,
    child: Child,
    dir: PathBuf,
    http: reqwest::Client,
}

/// The password of an Alertmanager behind basic auth, and its bcrypt hash for Alertmanager's
/// web config (`crypt(3)` with a `$2b$04$` salt).
const PASSWORD: &str = "s3cret-pass";
const PASSWORD_BCRYPT: &str = "$2b$04$HdazJw/Fz5UAPCC1TjBRsOedUa5FOr2bSqgviWObVDShcafOFllvi";

const CONFIG: &str = "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n";

impl Alertmanager {
    /// On a port of its own choosing (read from its log, so it is this process that answers).
    async fn start() -> Self {
        Self::start_on(0).await
    }

    async fn start_on(port: u16) -> Self {
        Self::start_with(port, CONFIG).await
    }

    /// Starts with `config` as its alertmanager.yml; panics if it does not get ready (as with
    /// a configuration it refuses).
    async fn start_with(port: u16, config: &str) -> Self {
        Self::start_guarded(port, config, None).await
    }

    /// Starts requiring basic auth of user `nexus` with [`PASSWORD`] when `guarded`.
    async fn start_guarded(port: u16, config: &str, guarded: Option<()>) -> Self {
        let bin = std::env::var("NEXUS_ALERTMANAGER_BIN")
            .unwrap_or_else(|_| "/usr/bin/prometheus-alertmanager".into());
        let dir = std::env::temp_dir().join(format!("nexus-alertmanager-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("alertmanager directory");
        std::fs::write(dir.join("alertmanager.yml"), config).expect("alertmanager config");
        let log = std::fs::File::create(dir.join("log")).expect("alertmanager log");
        let mut command = Command::new(&bin);
        if guarded.is_some() {
            std::fs::write(
                dir.join("web.yml"),
                format!("basic_auth_users:\n  nexus: {PASSWORD_BCRYPT}\n"),
            )
            .expect("web config");
            command.arg(format!(
                "--web.config.file={}",
                dir.join("web.yml").display()
            ));
        }
        let mut child = command
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=") // no gossip: a lone instance
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {bin} ({error}); run scripts/alertmanager (or scripts/test)")
            });
        // The address it listens on, from its log: port 0 becomes the kernel's pick, and a
        // fixed port taken meanwhile by someone else is an error here, not a stranger answering.
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            if let Some(port) = log
                .lines()
                .filter(|line| line.contains("msg=\"Listening on\""))
                .find_map(|line| {
                    line.rsplit("address=127.0.0.1:")
                        .next()?
                        .trim()
                        .parse()
                        .ok()
                })
            {
                break port;
            }
            let exited = child.try_wait().expect("Alertmanager's status");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "Alertmanager did not start listening ({exited:?}): {log}"
            );
            sleep(Duration::from_millis(50)).await;
        };
        let credentials = guarded.map_or(String::new(), |()| format!("nexus:{PASSWORD}@"));
        let alertmanager = Self {
            url: format!("http://{credentials}127.0.0.1:{port}"),
            port,
            child,
            dir,
            http: http_client(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = alertmanager
                .http
                .get(format!("{}/-/ready", alertmanager.url))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if ready {
                return alertmanager;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not get ready: {}",
                std::fs::read_to_string(alertmanager.dir.join("log")).unwrap_or_default()
            );
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// What `GET /api/v2/alerts` lists (active, silenced and inhibited).
    async fn alerts(&self) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/api/v2/alerts", self.url))
            .send()
            .await
            .expect("Alertmanager answers");
        assert!(
            response.status().is_success(),
            "GET /api/v2/alerts: {}",
            response.status()
        );
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON alerts")
    }

    /// Waits up to `within` for an alert with label `rule_id` and `host_id` to be listed.
    async fn wait_for_alert(&self, rule_id: i64, host_id: i64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(alert) = self.alerts().await.into_iter().find(|alert| {
                alert["labels"]["rule_id"].as_str() == Some(rule_id.to_string().as_str())
                    && alert["labels"]["host_id"].as_str() == Some(host_id.to_string().as_str())
            }) {
                return alert;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager at {} did not get the alert within {within:?}",
                self.url
            );
            sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on at the moment (the kernel's pick for an ephemeral bind).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A server on `database_url` that a test stops: gracefully, or as a crash would.
struct Server {
    handle: JoinHandle<()>,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    async fn spawn(database_url: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--no-migrate"];
        args.extend_from_slice(&NO_EVALUATION);
        args.extend_from_slice(extra);
        let app = Application::build(&serve_args(database_url, &args))
            .await
            .expect("the app builds");
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = app
                .run(async {
                    let _ = stop.await;
                })
                .await;
        });
        Self { handle, shutdown }
    }

    /// As a crash: the lease stays until it expires.
    fn kill(self) {
        self.handle.abort();
    }

    /// As on SIGTERM: the server finishes and returns.
    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.handle.await.expect("the server stopped");
    }
}

/// An alert as the evaluator writes it: the default rule `rule`, firing since `started_at`,
/// with its `alert_firing` event in the same transaction. Returns `(alert id, rule id)`.
async fn fire(
    app: &TestApp,
    rule: &str,
    host_id: i64,
    container_id: Option<&str>,
    started_at: DateTime<Utc>,
) -> (i64, i64) {
    let rule_id: i64 = app
        .db
        .query_one("SELECT id FROM alert_rules WHERE name = $1", &[&rule])
        .await
        .expect("a default rule")
        .get(0);
    let row = app
        .db
        .query_one(
            "WITH alert AS (
                 INSERT INTO alerts (rule_id, host_id, container_id, fingerprint, state, value,
                                     pending_since, started_at)
                 VALUES ($1, $2, $3, md5(concat_ws(':', $1::bigint, $2::bigint, $3::text)), 'firing', 137,
                         $4, $4)
                 RETURNING id
             ), event AS (
                 INSERT INTO events (kind, host_id, container_id, alert_id, from_value, to_value)
                 SELECT 'alert_firing', $2, $3, id, 'pending', 'firing' FROM alert
             )
             SELECT id FROM alert",
            &[&rule_id, &host_id, &container_id, &started_at],
        )
        .await
        .expect("alert written");
    (row.get(0), rule_id)
}

/// Resolves alert `id` now, with its `alert_resolved` event, as the evaluator does.
async fn resolve(app: &TestApp, id: i64) -> DateTime<Utc> {
    app.db
        .query_one(
            "WITH alert AS (
                 UPDATE alerts SET state = 'resolved', resolved_at = now() WHERE id = $1
                 RETURNING id, host_id, container_id, resolved_at
             ), event AS (
                 INSERT INTO events (kind, host_id, container_id, alert_id, from_value, to_value)
                 SELECT 'alert_resolved', host_id, container_id, id, 'firing', 'resolved' FROM alert
             )
             SELECT resolved_at FROM alert",
            &[&id],
        )
        .await
        .expect("alert resolved")
        .get(0)
}

/// Waits until some server holds the sender's lease, and a moment more for it to listen to
/// the event feed (so what follows tests the prompt send, not the first round).
async fn wait_for_a_sender(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while app
        .count(
            "SELECT count(*) FROM leases WHERE name = 'alertmanager_sender' AND expires_at > now()",
        )
        .await
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "no server took the sender's lease"
        );
        sleep(Duration::from_millis(100)).await;
    }
    sleep(Duration::from_millis(500)).await;
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("a time: {value}"))
}

#[tokio::test]
async fn a_firing_alert_reaches_alertmanager_with_its_labels_and_annotations() {
    let alertmanager = Alertmanager::start().await;
    // Re-sends a minute apart: the alert can arrive in time only by the prompt send.
    let app = TestApp::spawn_with(&[
        NO_EVALUATION[0],
        NO_EVALUATION[1],
        "--alertmanager-url",
        &alertmanager.url,
    ])
    .await;
    let host = app.create_host("web-1").await;
    app.db
        .execute(
            "UPDATE hosts SET labels = $2 WHERE id = $1",
            &[
                &host,
                &json!({"env": "prod", "team.name": "ops", "severity": "low"}),
            ],
        )
        .await
        .expect("labels set");
    app.db
        .execute(
            "INSERT INTO containers (host_id, container_id, name, image, first_seen_at, recorded_at)
             VALUES ($1, 'c0ffee', 'db', 'postgres', now(), now())",
            &[&host],
        )
        .await
        .expect("container written");
    wait_for_a_sender(&app).await;

    let started_at: DateTime<Utc> = "2026-01-02T03:04:05.678Z".parse().unwrap();
    let (alert_id, rule_id) = fire(
        &app,
        "container not running",
        host,
        Some("c0ffee"),
        started_at,
    )
    .await;
    let alert = alertmanager
        .wait_for_alert(rule_id, host, Duration::from_secs(5))
        .await;

    let expected_labels = json!({
        "alertname": "container not running",
        "severity": "warning",
        "host": "web-1",
        "host_id": host.to_string(),
        "container": "db",
        "container_id": "c0ffee",
        "rule_id": rule_id.to_string(),
        "env": "prod",
        "team_name": "ops",
    });
    assert_eq!(
        alert["labels"], expected_labels,
        "the host's `severity` must not replace the rule's"
    );
    let link = format!("{}/api/v1/alerts/{alert_id}", app.address);
    assert_eq!(
        alert["annotations"],
        json!({
            "summary": "A container that was running has stopped",
            "value": "137",
            "api_url": link,
        })
    );
    assert_eq!(alert["generatorURL"], link);
    assert_eq!(time(&alert["startsAt"]), started_at);
    let ends_in = time(&alert["endsAt"]) - Utc::now();
    assert!(
        ends_in > chrono::Duration::seconds(200) && ends_in <= chrono::Duration::seconds(240),
        "a firing alert ends 4 resend intervals (4 × 60 s) after it was sent, not in {ends_in}"
    );
    assert_eq!(alert["status"]["state"], "active");
}

#[tokio::test]
async fn a_resolved_alert_is_sent_with_its_end_time() {
    let alertmanager = Alertmanager::start().await;
    let app = TestApp::spawn_with(&[
        NO_EVALUATION[0],
        NO_EVALUATION[1],
        "--alertmanager-url",
        &alertmanager.url,
    ])
    .await;
    let host = app.create_host("web-2").await;
    wait_for_a_sender(&app).await;
    let (alert_id, rule_id) = fire(&app, "host offline", host, None, Utc::now()).await;
    alertmanager
        .wait_for_alert(rule_id, host, Duration::from_secs(5))
        .await;

    resolve(&app, alert_id).await;
    // Unresolved, Alertmanager would list it for another 4 minutes (its endsAt as firing).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !alertmanager.alerts().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "Alertmanager still lists the alert 5 s after it resolved: {:?}",
            alertmanager.alerts().await
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_alertmanager_that_was_down_gets_the_firing_alerts_when_it_returns() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[
        NO_EVALUATION[0],
        NO_EVALUATION[1],
        "--alertmanager-url",
        &url,
    ])
    .await;
    let host = app.create_host("web-3").await;
    wait_for_a_sender(&app).await;
    let (_, rule_id) = fire(&app, "host offline", host, None, Utc::now()).await;
    // The prompt send fails (nothing listens); the next re-send is a minute away.
    sleep(Duration::from_secs(1)).await;

    let alertmanager = Alertmanager::start_on(port).await;
    alertmanager
        .wait_for_alert(rule_id, host, Duration::from_secs(15))
        .await;
}

/// Two servers on one database, each sending to its own Alertmanager (so who sent is seen),
/// the first holding the lease; an alert fires, and reaches the first's Alertmanager only.
async fn two_servers_one_sending() -> (TestApp, [Alertmanager; 2], [Server; 2], i64, i64) {
    let (first_am, second_am) = tokio::join!(Alertmanager::start(), Alertmanager::start());
    let app = TestApp::spawn_with(&NO_EVALUATION).await; // owns the database; sends nowhere
    let resend = ["--alertmanager-resend-interval-seconds", "1"];
    let first = Server::spawn(
        &app.database_url,
        &[&["--alertmanager-url", &first_am.url][..], &resend].concat(),
    )
    .await;
    wait_for_a_sender(&app).await;
    let second = Server::spawn(
        &app.database_url,
        &[&["--alertmanager-url", &second_am.url][..], &resend].concat(),
    )
    .await;
    let host = app.create_host("web-4").await;
    let (_, rule_id) = fire(&app, "host offline", host, None, Utc::now()).await;
    first_am
        .wait_for_alert(rule_id, host, Duration::from_secs(5))
        .await;
    // Several re-send rounds of the holder later, the other has sent nothing.
    sleep(Duration::from_secs(3)).await;
    assert_eq!(
        second_am.alerts().await,
        Vec::<Value>::new(),
        "the server without the lease sent"
    );
    (app, [first_am, second_am], [first, second], rule_id, host)
}

#[tokio::test]
async fn two_servers_send_from_one_process_at_a_time_and_the_other_takes_over() {
    let (_app, [_, second_am], [first, second], rule_id, host) = two_servers_one_sending().await;
    first.kill();
    let stopped = Instant::now();
    // The lease lasts 20 s unrenewed, and the other checks it every 5 s.
    second_am
        .wait_for_alert(rule_id, host, Duration::from_secs(30))
        .await;
    eprintln!("took over after {:?}", stopped.elapsed());
    second.kill();
}

#[tokio::test]
async fn a_server_that_shuts_down_hands_the_sending_over_at_once() {
    let (_app, [_, second_am], [first, second], rule_id, host) = two_servers_one_sending().await;
    first.stop().await;
    // The other's next lease check (every 5 s), not the lease's 20 s expiry.
    second_am
        .wait_for_alert(rule_id, host, Duration::from_secs(8))
        .await;
    second.kill();
}

#[tokio::test]
async fn an_alert_silenced_in_alertmanager_is_silenced_until_the_silence_ends() {
    let alertmanager = Alertmanager::start().await;
    let app = TestApp::spawn_with(&[
        NO_EVALUATION[0],
        NO_EVALUATION[1],
        "--alertmanager-url",
        &alertmanager.url,
        "--alertmanager-resend-interval-seconds",
        "1",
    ])
    .await;
    let host = app.create_host("web-5").await;
    let (alert_id, rule_id) = fire(&app, "host offline", host, None, Utc::now()).await;
    alertmanager
        .wait_for_alert(rule_id, host, Duration::from_secs(5))
        .await;

    let ends_at = Utc::now() + chrono::Duration::hours(2);
    let response = alertmanager
        .http
        .post(format!("{}/api/v2/silences", alertmanager.url))
        .json(&json!({
            "matchers": [
                {"name": "rule_id", "value": rule_id.to_string(), "isRegex": false, "isEqual": true},
                {"name": "host_id", "value": host.to_string(), "isRegex": false, "isEqual": true},
            ],
            "startsAt": Utc::now().to_rfc3339(),
            "endsAt": ends_at.to_rfc3339(),
            "createdBy": "a test",
            "comment": "maintenance",
        }))
        .send()
        .await
        .expect("silence created");
    assert!(
        response.status().is_success(),
        "POST /api/v2/silences: {}",
        response.status()
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let silenced_until: Option<DateTime<Utc>> = app
            .db
            .query_one(
                "SELECT silenced_until FROM alerts WHERE id = $1",
                &[&alert_id],
            )
            .await
            .expect("the alert")
            .get(0);
        if let Some(until) = silenced_until {
            let off = (until - ends_at).num_milliseconds().abs();
            assert!(
                off < 1000,
                "silenced until {until}, the silence ends {ends_at}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the silence did not reach alerts.silenced_until"
        );
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_alertmanager_yml_of_the_docs_is_one_alertmanager_runs_with() {
    let docs = include_str!("../../docs/alerts.md");
    let example = docs
        .split("### An `alertmanager.yml` to start from")
        .nth(1)
        .and_then(|section| section.split("```yaml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("docs/alerts.md has a yaml block under its alertmanager.yml heading");
    let alertmanager = Alertmanager::start_with(free_port(), example).await;
    // Loaded, not only started: its status shows the routes of the example.
    let status: Value = alertmanager
        .http
        .get(format!("{}/api/v2/status", alertmanager.url))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("JSON status");
    let original = status["config"]["original"]
        .as_str()
        .expect("the loaded config");
    assert!(
        original.contains("receiver: on-call") && original.contains("- alertname"),
        "Alertmanager runs another configuration: {original}"
    );
}

#[tokio::test]
async fn an_alertmanager_behind_basic_auth_gets_the_alerts_and_its_password_is_never_logged() {
    let alertmanager = Alertmanager::start_guarded(0, CONFIG, Some(())).await;
    let unguarded = http_client()
        .get(format!(
            "http://127.0.0.1:{}/api/v2/alerts",
            alertmanager.port
        ))
        .send()
        .await
        .expect("Alertmanager answers");
    assert_eq!(
        unguarded.status(),
        401,
        "this Alertmanager must require its password"
    );
    let down = format!("http://nexus:{PASSWORD}@127.0.0.1:{}", free_port());
    let database_url = crate::helpers::fresh_database().await;
    let mut server = Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args([
            "--alertmanager-url",
            &alertmanager.url,
            "--alertmanager-url",
            &down,
        ])
        .args(["--alertmanager-resend-interval-seconds", "1"])
        .args(NO_EVALUATION)
        .env("DATABASE_URL", &database_url)
        .env("NEXUS_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(alertmanager.dir.join("server.log")).expect("log file"))
        .spawn()
        .expect("the server starts");
    let db = crate::helpers::connect(&database_url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let host: i64 = loop {
        // The server migrates the database first.
        if let Ok(row) = db
            .query_one(
                "INSERT INTO hosts (name, slug) VALUES ('web-6', 'web-6') RETURNING id",
                &[],
            )
            .await
        {
            break row.get(0);
        }
        assert!(
            Instant::now() < deadline,
            "the server did not migrate the database"
        );
        sleep(Duration::from_millis(200)).await;
    };
    let rule_id: i64 = db
        .query_one(
            "SELECT id FROM alert_rules WHERE name = 'host offline'",
            &[],
        )
        .await
        .expect("the default rule")
        .get(0);
    db.execute(
        "INSERT INTO alerts (rule_id, host_id, fingerprint, state, pending_since, started_at)
         VALUES ($1, $2, 'f', 'firing', now(), now())",
        &[&rule_id, &host],
    )
    .await
    .expect("alert written");
    alertmanager
        .wait_for_alert(rule_id, host, Duration::from_secs(15))
        .await;

    let log_path = alertmanager.dir.join("server.log");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("sending alerts to Alertmanager failed")
    {
        assert!(
            Instant::now() < deadline,
            "the unreachable Alertmanager was never reported"
        );
        sleep(Duration::from_millis(200)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    let log = std::fs::read_to_string(&log_path).expect("the server's log");
    assert!(
        !log.contains(PASSWORD),
        "the password reached the log:\n{log}"
    );
}

#[tokio::test]
async fn an_alertmanager_that_never_answers_does_not_delay_the_others() {
    // Accepts connections and reads nothing: each post to it waits for its 10 s timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a silent listener");
    let silent_url = format!("http://{}", silent.local_addr().expect("its address"));
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let alertmanager = Alertmanager::start().await;
    // The silent one first: a sender posting in turn would reach the other 10 s late.
    let app = TestApp::spawn_with(&[
        NO_EVALUATION[0],
        NO_EVALUATION[1],
        "--alertmanager-url",
        &silent_url,
        "--alertmanager-url",
        &alertmanager.url,
    ])
    .await;
    let host = app.create_host("web-7").await;
    wait_for_a_sender(&app).await;
    // The first rounds are stuck on the silent one now.
    sleep(Duration::from_secs(1)).await;
    let (_, rule_id) = fire(&app, "host offline", host, None, Utc::now()).await;
    alertmanager
        .wait_for_alert(rule_id, host, Duration::from_secs(5))
        .await;
    held.abort();
}

/// A snapshot `seconds` from now of one container `c1` in `state`, exiting with code 1 when
/// not running.
fn container_snapshot(seconds: i64, state: &str) -> Value {
    let mut body = payload(&at(chrono::Duration::seconds(seconds)), &[("c1", state)]);
    if state != "running" {
        body["containers"][0]["exit_code"] = json!(1);
    }
    body
}

async fn post(app: &TestApp, token: &str, body: &Value) {
    let response = app.post_telemetry(token, body).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn a_container_that_dies_reaches_alertmanager_through_the_evaluator_and_resolves_there() {
    let alertmanager = Alertmanager::start().await;
    let app =
        TestApp::spawn_with(&[&FAST[..], &["--alertmanager-url", &alertmanager.url]].concat())
            .await;
    // The default rule, firing at once; the other defaults off, so nothing else is sent.
    app.db
        .execute(
            "UPDATE alert_rules SET enabled = (name = 'container not running'),
                 for_seconds = CASE WHEN name = 'container not running' THEN 0 ELSE for_seconds END",
            &[],
        )
        .await
        .expect("rules updated");
    let rule_id: i64 = app
        .db
        .query_one(
            "SELECT id FROM alert_rules WHERE name = 'container not running'",
            &[],
        )
        .await
        .expect("the default rule")
        .get(0);
    let (host, token) = app.host_with_token("web-01").await;
    app.db
        .execute(
            "UPDATE hosts SET labels = $2 WHERE id = $1",
            &[&host, &json!({"env": "prod"})],
        )
        .await
        .expect("labels set");
    post(&app, &token, &container_snapshot(-3, "running")).await;
    post(&app, &token, &container_snapshot(-2, "exited")).await;

    let alert = alertmanager
        .wait_for_alert(rule_id, host, Duration::from_secs(15))
        .await;
    let row = app
        .db
        .query_one(
            "SELECT id, started_at FROM alerts WHERE rule_id = $1 AND state = 'firing'",
            &[&rule_id],
        )
        .await
        .expect("the evaluator's one firing alert");
    let (alert_id, started_at): (i64, DateTime<Utc>) = (row.get(0), row.get(1));
    assert_eq!(
        alert["labels"],
        json!({
            "alertname": "container not running",
            "severity": "warning",
            "host": "web-01",
            "host_id": host.to_string(),
            "container": "app-c1",
            "container_id": "c1",
            "rule_id": rule_id.to_string(),
            "env": "prod",
        })
    );
    let link = format!("{}/api/v1/alerts/{alert_id}", app.address);
    assert_eq!(
        alert["annotations"],
        json!({
            "summary": "A container that was running has stopped",
            "value": "1",
            "api_url": link,
        }),
        "the value is the exit code"
    );
    assert_eq!(time(&alert["startsAt"]), started_at.trunc_subsecs(3));
    assert_eq!(alert["status"]["state"], "active");
    let ends_in = time(&alert["endsAt"]) - Utc::now();
    assert!(
        ends_in > chrono::Duration::seconds(200),
        "firing, it ends 4 resend intervals (4 × 60 s) after it was sent, not in {ends_in}"
    );

    post(&app, &token, &container_snapshot(-1, "running")).await;
    // Alertmanager 0.25 lists no alert whose endsAt has passed (resolved), whatever the
    // filters; as firing it would list this one for another 4 minutes.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let listed = alertmanager.alerts().await;
        if listed.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager still lists the alert 15 s after the container ran again: {listed:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }
    let resolved: Option<DateTime<Utc>> = app
        .db
        .query_one(
            "SELECT resolved_at FROM alerts WHERE id = $1 AND state = 'resolved'",
            &[&alert_id],
        )
        .await
        .expect("the alert resolved")
        .get(0);
    assert!(resolved.is_some(), "resolved with its time");
}

#[tokio::test]
async fn a_firing_alert_stays_active_in_alertmanager_past_its_first_end_because_it_is_re_sent() {
    let alertmanager = Alertmanager::start().await;
    // Re-sent every second: each post ends the alert 4 s ahead.
    let app = TestApp::spawn_with(&[
        NO_EVALUATION[0],
        NO_EVALUATION[1],
        "--alertmanager-url",
        &alertmanager.url,
        "--alertmanager-resend-interval-seconds",
        "1",
    ])
    .await;
    let host = app.create_host("web-8").await;
    let (_, rule_id) = fire(&app, "host offline", host, None, Utc::now()).await;
    let first = alertmanager
        .wait_for_alert(rule_id, host, Duration::from_secs(5))
        .await;
    let first_end = time(&first["endsAt"]);
    assert!(
        first_end - Utc::now() <= chrono::Duration::seconds(4),
        "sent to end 4 × 1 s ahead, ends {first_end}"
    );
    // Past that end Alertmanager would hold it resolved (and list it no more) had nothing
    // re-sent it.
    while Utc::now() < first_end + chrono::Duration::seconds(2) {
        sleep(Duration::from_millis(100)).await;
    }
    let now = Utc::now();
    let listed = alertmanager.alerts().await;
    let alert = listed
        .iter()
        .find(|alert| alert["labels"]["rule_id"].as_str() == Some(&rule_id.to_string()))
        .unwrap_or_else(|| {
            panic!("Alertmanager no longer lists the alert 2 s past its first end: {listed:?}")
        });
    assert_eq!(alert["status"]["state"], "active");
    assert!(
        time(&alert["endsAt"]) > now,
        "re-sent to end later: {alert}"
    );
    assert_eq!(
        (&alert["startsAt"], &alert["fingerprint"]),
        (&first["startsAt"], &first["fingerprint"]),
        "the same alert, not a new one"
    );
}

/// `GET {path}` of Alertmanager's API, as JSON.
async fn am_get(alertmanager: &Alertmanager, path: &str) -> Value {
    let response = alertmanager
        .http
        .get(format!("{}{path}", alertmanager.url))
        .send()
        .await
        .expect("Alertmanager answers");
    assert!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    response.json().await.expect("JSON")
}

/// The silences we created in Alertmanager that are not expired.
async fn our_silences(alertmanager: &Alertmanager) -> Vec<Value> {
    am_get(alertmanager, "/api/v2/silences")
        .await
        .as_array()
        .expect("a list of silences")
        .iter()
        .filter(|s| s["createdBy"] == "nexus-telemetry" && s["status"]["state"] != "expired")
        .cloned()
        .collect()
}

/// Waits up to 15 s for `done` to hold of our silences and the alert `(rule_id, host_id)` as
/// Alertmanager lists them; returns them.
async fn wait_in_alertmanager(
    alertmanager: &Alertmanager,
    rule_id: i64,
    host_id: i64,
    what: &str,
    done: impl Fn(&[Value], &Value) -> bool,
) -> (Vec<Value>, Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let silences = our_silences(alertmanager).await;
        let alert = alertmanager
            .wait_for_alert(rule_id, host_id, Duration::from_secs(5))
            .await;
        if done(&silences, &alert) {
            return (silences, alert);
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not come to {what} within 15 s: silences {silences:#?}, alert {alert:#}"
        );
        sleep(Duration::from_millis(200)).await;
    }
}

/// `(silenced_until, silenced_via)` of alert `id`, and how many silences the sender recorded.
async fn our_silence_state(app: &TestApp, id: i64) -> (Option<DateTime<Utc>>, Option<String>, i64) {
    let row = app
        .db
        .query_one(
            "SELECT silenced_until, silenced_via FROM alerts WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the alert");
    let recorded = app
        .count("SELECT count(*) FROM alertmanager_silences")
        .await;
    (row.get(0), row.get(1), recorded)
}

#[tokio::test]
async fn an_alert_silenced_through_our_api_is_silenced_in_alertmanager_and_clearing_it_expires_that_silence()
 {
    let alertmanager = Alertmanager::start().await;
    let app = TestApp::spawn_with(&[
        NO_EVALUATION[0],
        NO_EVALUATION[1],
        "--alertmanager-url",
        &alertmanager.url,
        "--alertmanager-resend-interval-seconds",
        "1",
    ])
    .await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-6").await;
    let (alert_id, rule_id) = fire(&app, "host offline", host, None, Utc::now()).await;
    alertmanager
        .wait_for_alert(rule_id, host, Duration::from_secs(5))
        .await;
    let silence = |until: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            let answer = app
                .admin(
                    reqwest::Method::POST,
                    &format!("/alerts/{alert_id}/silence"),
                    Some(admin),
                    Some(&json!({ "until": until })),
                )
                .await;
            assert_eq!(answer.status, 200, "{}", answer.body);
        }
    };
    let ends = |silences: &[Value], until: DateTime<Utc>| {
        silences.len() == 1 && time(&silences[0]["endsAt"]) == until
    };

    let until: DateTime<Utc> = (Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .parse()
        .unwrap();
    silence(json!(until)).await;
    let (silences, alert) = wait_in_alertmanager(
        &alertmanager,
        rule_id,
        host,
        "our silence",
        |silences, alert| ends(silences, until) && alert["status"]["state"] == "suppressed",
    )
    .await;
    let mut matchers: Vec<(String, String)> = silences[0]["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(
                (&m["isRegex"], &m["isEqual"]),
                (&json!(false), &json!(true))
            );
            (
                m["name"].as_str().unwrap().into(),
                m["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        [
            ("container_id".into(), String::new()),
            ("host_id".into(), host.to_string()),
            ("rule_id".into(), rule_id.to_string()),
        ],
        "the silence matches this alert's rule and host, and no container's alert"
    );
    assert_eq!(alert["status"]["silencedBy"], json!([silences[0]["id"]]));
    // Re-sends every second, each followed by the mirror: our own silence does not come back
    // as Alertmanager's, and is not created twice.
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        our_silence_state(&app, alert_id).await,
        (Some(until), Some("api".into()), 1)
    );
    assert_eq!(our_silences(&alertmanager).await.len(), 1);

    let later = until + chrono::Duration::hours(1);
    silence(json!(later)).await;
    wait_in_alertmanager(
        &alertmanager,
        rule_id,
        host,
        "the silence moved",
        |silences, alert| ends(silences, later) && alert["status"]["state"] == "suppressed",
    )
    .await;

    silence(Value::Null).await;
    wait_in_alertmanager(
        &alertmanager,
        rule_id,
        host,
        "no silence",
        |silences, alert| silences.is_empty() && alert["status"]["state"] == "active",
    )
    .await;
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        our_silence_state(&app, alert_id).await,
        (None, None, 0),
        "the expired silence is forgotten and not mirrored back"
    );
}

#[tokio::test]
async fn a_silence_created_in_alertmanager_before_a_crash_is_adopted_not_doubled() {
    let alertmanager = Alertmanager::start().await;
    let app = TestApp::spawn_with(&[
        NO_EVALUATION[0],
        NO_EVALUATION[1],
        "--alertmanager-url",
        &alertmanager.url,
        "--alertmanager-resend-interval-seconds",
        "1",
    ])
    .await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-7").await;
    let (alert_id, rule_id) = fire(&app, "host offline", host, None, Utc::now()).await;
    // What a sender that died between Alertmanager's answer and its own record left behind.
    let response = alertmanager
        .http
        .post(format!("{}/api/v2/silences", alertmanager.url))
        .json(&json!({
            "matchers": [
                {"name": "rule_id", "value": rule_id.to_string(), "isRegex": false, "isEqual": true},
                {"name": "host_id", "value": host.to_string(), "isRegex": false, "isEqual": true},
                {"name": "container_id", "value": "", "isRegex": false, "isEqual": true},
            ],
            "startsAt": Utc::now().to_rfc3339(),
            "endsAt": (Utc::now() + chrono::Duration::minutes(30)).to_rfc3339(),
            "createdBy": "nexus-telemetry",
            "comment": format!("nexus-telemetry alert {alert_id}: silenced through its API"),
        }))
        .send()
        .await
        .expect("silence created");
    assert!(response.status().is_success(), "{}", response.status());

    let until: DateTime<Utc> = "2099-01-01T00:00:00Z".parse().unwrap();
    let answer = app
        .admin(
            reqwest::Method::POST,
            &format!("/alerts/{alert_id}/silence"),
            Some(&admin),
            Some(&json!({ "until": until })),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (silences, _) = wait_in_alertmanager(
        &alertmanager,
        rule_id,
        host,
        "one silence to 2099",
        |silences, _| silences.iter().any(|s| time(&s["endsAt"]) == until),
    )
    .await;
    assert_eq!(
        silences.len(),
        1,
        "adopted and moved, not doubled: {silences:#?}"
    );
    assert_eq!(our_silence_state(&app, alert_id).await.2, 1);
}

#[tokio::test]
async fn a_silenced_alert_that_resolves_has_its_alertmanager_silence_expired() {
    let alertmanager = Alertmanager::start().await;
    let app = TestApp::spawn_with(&[
        NO_EVALUATION[0],
        NO_EVALUATION[1],
        "--alertmanager-url",
        &alertmanager.url,
        "--alertmanager-resend-interval-seconds",
        "1",
    ])
    .await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-8").await;
    let (alert_id, rule_id) = fire(&app, "host offline", host, None, Utc::now()).await;
    let answer = app
        .admin(
            reqwest::Method::POST,
            &format!("/alerts/{alert_id}/silence"),
            Some(&admin),
            Some(&json!({ "until": "2099-01-01T00:00:00Z" })),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait_in_alertmanager(
        &alertmanager,
        rule_id,
        host,
        "our silence",
        |silences, _| silences.len() == 1,
    )
    .await;

    resolve(&app, alert_id).await;
    // The next occurrence of this rule and host would carry the same labels: it must not find
    // the resolved alert's silence still there.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !our_silences(&alertmanager).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the resolved alert's silence is still active in Alertmanager"
        );
        sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while our_silence_state(&app, alert_id).await.2 != 0 {
        assert!(
            Instant::now() < deadline,
            "the expired silence is still recorded"
        );
        sleep(Duration::from_millis(100)).await;
    }
}
