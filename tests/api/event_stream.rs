//! The live event stream (`GET /api/v1/events/stream`, Server-Sent Events): events written
//! through any server process, resume by `Last-Event-ID` without gap or repeat, heartbeats,
//! slow readers cut off, and nothing running while nobody listens.

use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use futures_util::StreamExt;
use nexus_test_support::clusters::free_port;
use reqwest::Method;
use serde_json::Value;

use crate::alert_evaluation::{FAST, disable_default_rules, rule};
use crate::helpers::{TestApp, at, http_client, payload, rfc3339};

/// One Server-Sent Events message, or a comment line (`id` and `event` empty).
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) event: String,
    data: Value,
    comment: bool,
}

/// A client of the stream, reading messages as they arrive.
pub(crate) struct Stream {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

/// Opens `{address}/api/v1/events/stream{query}` with the admin token in the header (or none,
/// when it is in the query), resuming after `last_event_id` if given.
pub(crate) async fn open(
    address: &str,
    query: &str,
    bearer: Option<&str>,
    last_event_id: Option<i64>,
) -> Stream {
    let mut request = http_client().get(format!("{address}/api/v1/events/stream{query}"));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().await.expect("request sent");
    assert_eq!(response.status(), 200, "{query}");
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "{query}"
    );
    Stream {
        body: response.bytes_stream().boxed(),
        buffer: String::new(),
    }
}

impl Stream {
    /// The next message or comment within `wait`; `None` when the server ended the stream.
    async fn next(&mut self, wait: StdDuration) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            let chunk = tokio::time::timeout(wait, self.body.next())
                .await
                .unwrap_or_else(|_| panic!("nothing within {wait:?}; have {:?}", self.buffer))?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk.expect("body chunk")).unwrap());
        }
    }

    /// The next `n` event messages (comments skipped).
    pub(crate) async fn events(&mut self, n: usize) -> Vec<Message> {
        let mut events = Vec::new();
        while events.len() < n {
            let message = self
                .next(StdDuration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("the stream ended after {events:?}"));
            if !message.comment {
                events.push(message);
            }
        }
        events
    }
}

fn parse(block: &str) -> Message {
    let mut message = Message {
        id: String::new(),
        event: String::new(),
        data: Value::Null,
        comment: false,
    };
    for line in block.lines() {
        if line.starts_with(':') {
            message.comment = true;
        } else if let Some(id) = line.strip_prefix("id: ") {
            message.id = id.to_owned();
        } else if let Some(event) = line.strip_prefix("event: ") {
            message.event = event.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            message.data = serde_json::from_str(data).expect("data is JSON");
        }
    }
    message
}

/// `kind container` of each event message.
fn described(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m.event,
                m.data["container_id"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

async fn post(app: &TestApp, token: &str, body: &Value) {
    assert_eq!(app.post_telemetry(token, body).await.status(), 204);
}

/// A real `nexus-telemetry serve` process on `database_url`, stopped when dropped.
struct ServerProcess {
    child: Child,
    address: String,
}

impl ServerProcess {
    async fn start(database_url: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
            .args(["serve", "--no-migrate", "--database-url", database_url])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("DATABASE_URL")
            .env("NEXUS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server binary starts");
        let address = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while !http_client()
            .get(format!("{address}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(started.elapsed() < StdDuration::from_secs(60), "not ready");
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        Self { child, address }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_stream_on_one_server_process_gets_events_written_through_another_within_a_second() {
    let app = TestApp::spawn().await;
    let other = ServerProcess::start(&app.database_url).await;
    let admin = app.admin_token().await;
    let (host, token) = app.host_with_token("web-01").await;
    let mut stream = open(&other.address, "", Some(&admin), None).await;

    let posted = Instant::now();
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-1)), &[("c1", "running")]),
    )
    .await;
    let events = stream.events(2).await;
    let latency = posted.elapsed();

    assert_eq!(described(&events), ["online -", "created c1"]);
    assert!(latency < StdDuration::from_secs(1), "{latency:?}");
    let created = &events[1];
    assert_eq!(
        created.id,
        created.data["id"].to_string(),
        "id: is the event id"
    );
    assert_eq!(created.data["kind"], "created");
    assert_eq!(created.data["host_id"], host);
    assert_eq!(created.data["to_value"], "running");
    let ids: Vec<i64> = events.iter().map(|m| m.id.parse().unwrap()).collect();
    assert!(ids[0] < ids[1]);
}

#[tokio::test]
async fn a_stream_resumed_with_last_event_id_replays_what_it_missed_then_goes_live_once_each() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, token) = app.host_with_token("web-01").await;
    let mut stream = open(&app.address, "", Some(&admin), None).await;
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-30)), &[("c1", "running")]),
    )
    .await;
    let before = stream.events(2).await;
    let last: i64 = before[1].id.parse().unwrap();
    drop(stream);

    // Missed while disconnected: c1 exits, c2 appears.
    post(
        &app,
        &token,
        &payload(
            &at(Duration::seconds(-20)),
            &[("c1", "exited"), ("c2", "running")],
        ),
    )
    .await;
    let mut resumed = open(&app.address, "", Some(&admin), Some(last)).await;
    let replayed = resumed.events(2).await;
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-10)), &[("c1", "running")]),
    )
    .await;
    let live = resumed.events(2).await;

    assert_eq!(described(&replayed), ["state_changed c1", "created c2"]);
    assert_eq!(described(&live), ["state_changed c1", "removed c2"]);
    let ids: Vec<i64> = replayed
        .iter()
        .chain(&live)
        .map(|m| m.id.parse().unwrap())
        .collect();
    assert!(
        ids[0] > last && ids.windows(2).all(|w| w[0] < w[1]),
        "{ids:?}"
    );
    let all = app.count("SELECT count(*) FROM events").await;
    assert_eq!(all, 6, "every event reached the client once");
    // Nothing else arrives: the next message is a heartbeat at most.
    if let Ok(Some(message)) = tokio::time::timeout(
        StdDuration::from_millis(1500),
        resumed.next(StdDuration::from_secs(2)),
    )
    .await
    {
        assert!(message.comment, "no repeat: {message:?}");
    }
}

#[tokio::test]
async fn the_stream_takes_the_same_filters_as_the_listing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (web, web_token) = app.host_with_token("web-01").await;
    let (_, db_token) = app.host_with_token("db-01").await;
    let mut stream = open(
        &app.address,
        &format!("?host_id={web}&kind=state_changed&kind=removed"),
        Some(&admin),
        Some(0),
    )
    .await;
    post(
        &app,
        &db_token,
        &payload(&at(Duration::seconds(-20)), &[("d1", "running")]),
    )
    .await;
    post(
        &app,
        &db_token,
        &payload(&at(Duration::seconds(-10)), &[("d1", "exited")]),
    )
    .await;
    post(
        &app,
        &web_token,
        &payload(
            &at(Duration::seconds(-20)),
            &[("w1", "running"), ("w2", "running")],
        ),
    )
    .await;
    post(
        &app,
        &web_token,
        &payload(&at(Duration::seconds(-10)), &[("w1", "exited")]),
    )
    .await;
    assert_eq!(
        described(&stream.events(2).await),
        ["state_changed w1", "removed w2"]
    );
}

#[tokio::test]
async fn the_stream_passes_exactly_what_the_listing_lists_for_every_filter() {
    // No alert evaluation: its events could land between the listing and the stream.
    let app = TestApp::spawn_with(&["--alert-evaluation-interval-seconds", "0"]).await;
    let admin = app.admin_token().await;
    let (web, web_token) = app.host_with_token("web-01").await;
    let (db, db_token) = app.host_with_token("db-01").await;
    // Snapshot instants at the table's precision (microseconds), and finer ones beside them.
    let instant = |seconds: i64| (Utc::now() + Duration::seconds(seconds)).trunc_subsecs(6);
    let (t1, t2, t3) = (instant(-30), instant(-20), instant(-10));
    let nanos = |t: DateTime<Utc>, n: i64| {
        (t + Duration::nanoseconds(n)).to_rfc3339_opts(SecondsFormat::Nanos, true)
    };
    let filters = [
        format!("?host_id={db}"),
        "?container_id=w1".to_string(),
        "?container_id=nope".to_string(),
        "?kind=created&kind=removed".to_string(),
        format!("?since={}", rfc3339(t2)),
        format!("?until={}", rfc3339(t2)),
        format!("?since={}", nanos(t2, 1)),
        format!("?since={}", nanos(t2, -1)),
        format!("?until={}", nanos(t2, 1)),
        format!("?until={}", nanos(t2, -1)),
        format!(
            "?container_id=w1&since={}&until={}",
            rfc3339(t2),
            rfc3339(t3)
        ),
        format!("?host_id={web}&kind=state_changed&since={}", nanos(t1, 999)),
    ];
    // Live streams only: their filter runs in Rust, the listing's in SQL.
    let mut streams = Vec::new();
    for filter in &filters {
        streams.push(open(&app.address, filter, Some(&admin), None).await);
    }
    let snapshot = |t: DateTime<Utc>, containers: &[(&str, &str)]| payload(&rfc3339(t), containers);
    post(
        &app,
        &web_token,
        &snapshot(t1, &[("w1", "running"), ("w2", "running")]),
    )
    .await;
    post(&app, &db_token, &snapshot(t2, &[("d1", "running")])).await;
    post(
        &app,
        &web_token,
        &snapshot(t2, &[("w1", "exited"), ("w2", "running")]),
    )
    .await;
    post(&app, &web_token, &snapshot(t3, &[("w1", "running")])).await;
    let total = app.count("SELECT count(*) FROM events").await;
    assert_eq!(
        total, 8,
        "online, created ×2, online, created, state_changed ×2, removed"
    );

    let mut listed_by_filter = Vec::new();
    for (filter, stream) in filters.iter().zip(&mut streams) {
        let path = format!("/events{filter}&limit=200");
        let answer = app.admin(Method::GET, &path, Some(&admin), None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let listed: Vec<String> = answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].to_string())
            .collect();
        let streamed: Vec<String> = stream
            .events(listed.len())
            .await
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(
            streamed, listed,
            "{filter}: the stream and the listing differ"
        );
        if let Ok(Some(message)) = tokio::time::timeout(
            StdDuration::from_millis(500),
            stream.next(StdDuration::from_secs(2)),
        )
        .await
        {
            assert!(
                message.comment,
                "{filter}: the stream passed more: {message:?}"
            );
        }
        listed_by_filter.push((filter.as_str(), described_ids(&app, &listed).await));
    }
    // What the filters pass, so the comparison above is not between two empty lists.
    let expected: [&[&str]; 12] = [
        &["online -", "created d1"],
        &["created w1", "state_changed w1", "state_changed w1"],
        &[],
        &["created w1", "created w2", "created d1", "removed w2"],
        // `since` is inclusive; the hosts came online now.
        &[
            "online -",
            "online -",
            "created d1",
            "state_changed w1",
            "state_changed w1",
            "removed w2",
        ],
        &["created w1", "created w2"],
        // A nanosecond past t2 passes nothing at t2; a nanosecond before it passes t2.
        &["online -", "online -", "state_changed w1", "removed w2"],
        &[
            "online -",
            "online -",
            "created d1",
            "state_changed w1",
            "state_changed w1",
            "removed w2",
        ],
        &["created w1", "created w2", "created d1", "state_changed w1"],
        &["created w1", "created w2"],
        &["state_changed w1"],
        &["state_changed w1", "state_changed w1"],
    ];
    for ((filter, listed), expected) in listed_by_filter.iter().zip(expected) {
        assert_eq!(listed, expected, "{filter}");
    }
}

/// `kind container` of the events with these ids, in id order.
async fn described_ids(app: &TestApp, ids: &[String]) -> Vec<String> {
    let ids: Vec<i64> = ids.iter().map(|id| id.parse().unwrap()).collect();
    app.db
        .query(
            "SELECT kind || ' ' || coalesce(container_id, '-') FROM events
             WHERE id = ANY ($1) ORDER BY id",
            &[&ids],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn the_admin_token_may_come_in_the_query_for_event_source() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, agent_token) = app.host_with_token("web-01").await;
    let status = |query: String, bearer: Option<String>| {
        let address = app.address.clone();
        async move {
            let mut request = http_client().get(format!("{address}/api/v1/events/stream{query}"));
            if let Some(bearer) = bearer {
                request = request.bearer_auth(bearer);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status(String::new(), None).await, 401);
    assert_eq!(status("?access_token=nxk_nope".into(), None).await, 401);
    assert_eq!(status(String::new(), Some(agent_token.clone())).await, 401);
    assert_eq!(
        status(format!("?access_token={agent_token}"), None).await,
        401
    );
    assert_eq!(
        status("?kind=nonsense".into(), Some(admin.clone())).await,
        422
    );
    let mut stream = open(&app.address, &format!("?access_token={admin}"), None, None).await;
    let (_, token) = app.host_with_token("db-01").await;
    post(&app, &token, &payload(&at(Duration::seconds(-1)), &[])).await;
    assert_eq!(described(&stream.events(1).await), ["online -"]);
}

#[tokio::test]
async fn an_idle_stream_gets_a_comment_heartbeat() {
    let app = TestApp::spawn_with(&["--event-stream-heartbeat-seconds", "1"]).await;
    let admin = app.admin_token().await;
    let mut stream = open(&app.address, "", Some(&admin), None).await;
    let message = stream.next(StdDuration::from_secs(3)).await.unwrap();
    assert!(message.comment, "{message:?}");
}

#[tokio::test]
async fn a_stream_that_falls_behind_its_buffer_is_cut_off_and_resumes_without_loss() {
    let app = TestApp::spawn_with(&["--event-stream-buffer", "2"]).await;
    let admin = app.admin_token().await;
    let (_, token) = app.host_with_token("web-01").await;
    let mut stream = open(&app.address, "", Some(&admin), None).await;
    // One transaction of 31 events, handed out at once: more than the buffer holds.
    let containers: Vec<(String, &str)> =
        (0..30).map(|i| (format!("c{i:02}"), "running")).collect();
    let containers: Vec<(&str, &str)> =
        containers.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-1)), &containers),
    )
    .await;

    let mut received = Vec::new();
    while let Some(message) = stream.next(StdDuration::from_secs(10)).await {
        if !message.comment {
            received.push(message);
        }
    }
    assert!(
        received.len() < 31,
        "cut off, not waited for: got {}",
        received.len()
    );
    let last = received.last().map_or(0, |m| m.id.parse().unwrap());
    let mut resumed = open(&app.address, "", Some(&admin), Some(last)).await;
    received.extend(resumed.events(31 - received.len()).await);
    let ids: Vec<i64> = received.iter().map(|m| m.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "none twice: {ids:?}");
    assert_eq!(ids.len(), 31);
}

/// Event listener sessions of this app's database.
async fn listeners(app: &TestApp) -> i64 {
    app.count(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'nexus-telemetry-events'",
    )
    .await
}

#[tokio::test]
async fn nothing_listens_while_no_stream_is_open() {
    // A closed connection is noticed when the next write (a heartbeat) fails.
    let app = TestApp::spawn_with(&["--event-stream-heartbeat-seconds", "1"]).await;
    let admin = app.admin_token().await;
    assert_eq!(listeners(&app).await, 0, "none before the first stream");
    let stream = open(&app.address, "", Some(&admin), None).await;
    assert_eq!(listeners(&app).await, 1);
    let second = open(&app.address, "", Some(&admin), None).await;
    assert_eq!(listeners(&app).await, 1, "one listener per process");
    drop((stream, second));
    // Events keep coming (a state change every 200 ms): they must not keep the listener up.
    let (_, token) = app.host_with_token("web-01").await;
    let started = Instant::now();
    let mut step = 0i64;
    while listeners(&app).await > 0 {
        assert!(
            started.elapsed() < StdDuration::from_secs(12),
            "the listener outlived its last stream"
        );
        let state = if step % 2 == 0 { "running" } else { "exited" };
        let recorded_at = at(Duration::milliseconds(step * 200 - 30_000));
        post(&app, &token, &payload(&recorded_at, &[("c1", state)])).await;
        step += 1;
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_stream_of_the_alert_kinds_gets_the_evaluators_firing_and_resolving_events() {
    let app = TestApp::spawn_with(&FAST).await;
    // One rule of the test's own, firing at once.
    disable_default_rules(&app).await;
    let rule = rule(&app, "down", "container_not_running", &[]).await;
    let admin = app.admin_token().await;
    let (host, token) = app.host_with_token("web-01").await;
    let mut stream = open(
        &app.address,
        "?kind=alert_firing&kind=alert_resolved",
        Some(&admin),
        None,
    )
    .await;
    let container = |seconds: i64, state: &str| {
        let mut body = payload(&at(Duration::seconds(seconds)), &[("c1", state)]);
        if state != "running" {
            body["containers"][0]["exit_code"] = serde_json::json!(1);
        }
        body
    };
    post(&app, &token, &container(-3, "running")).await;
    post(&app, &token, &container(-2, "exited")).await;
    let firing = stream.events(1).await.remove(0);
    post(&app, &token, &container(-1, "running")).await;
    let resolved = stream.events(1).await.remove(0);

    let alert: i64 = app
        .db
        .query_one(
            "SELECT id FROM alerts WHERE rule_id = $1 AND state = 'resolved'",
            &[&rule],
        )
        .await
        .expect("the evaluator's one alert, resolved")
        .get(0);
    let written: Vec<(i64, String)> = app
        .db
        .query(
            "SELECT id, kind FROM events WHERE alert_id = $1 ORDER BY id",
            &[&alert],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let received: Vec<(i64, String)> = [&firing, &resolved]
        .iter()
        .map(|m| (m.id.parse().unwrap(), m.event.clone()))
        .collect();
    assert_eq!(
        received, written,
        "`id:` and `event:` are the alert's events' ids and kinds, and nothing else came first"
    );
    for (message, from, to) in [
        (&firing, None, "firing"),
        (&resolved, Some("firing"), "resolved"),
    ] {
        assert_eq!(message.data["id"].to_string(), message.id);
        assert_eq!(message.data["kind"], message.event.as_str());
        assert_eq!(message.data["alert_id"], alert, "{}", message.event);
        assert_eq!(message.data["host_id"], host, "{}", message.event);
        assert_eq!(message.data["container_id"], "c1", "{}", message.event);
        assert_eq!(
            message.data["from_value"].as_str(),
            from,
            "{}",
            message.event
        );
        assert_eq!(message.data["to_value"], to, "{}", message.event);
    }
}

/// A snapshot of `containers` containers whose ids and states are as long as the contract
/// allows, so every event message is as large as it gets (about 350 bytes).
fn long_payload(recorded_at: &str, containers: usize, state: char) -> Value {
    let ids: Vec<String> = (0..containers).map(|i| format!("{i:0>80}")).collect();
    let state: String = std::iter::repeat_n(state, 32).collect();
    let pairs: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), state.as_str())).collect();
    payload(recorded_at, &pairs)
}

/// A raw TCP client of the stream that reads its response head, then nothing more until told;
/// its receive buffer and segment size are as small as the kernel allows, so the server's
/// writes block as soon as possible.
async fn stalled_stream(address: &str, admin: &str) -> (tokio::net::TcpStream, Vec<u8>) {
    use socket2::{Domain, Protocol, Socket, Type};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let addr: std::net::SocketAddr = address.trim_start_matches("http://").parse().unwrap();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    // The segment size the server may use toward us: its socket's send buffer is sized from it.
    socket.set_tcp_mss(536).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut stream = tokio::net::TcpStream::from_std(socket.into()).unwrap();
    let request = format!(
        "GET /api/v1/events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0; 1024];
        let n = tokio::time::timeout(StdDuration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the response head within 10 s")
            .unwrap();
        assert!(n > 0, "the server closed before answering");
        received.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&received).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    (stream, received)
}

/// The ids of the complete messages in a raw response (head, then a chunked body), in order; a
/// chunk or a message cut off in the middle is left out.
fn message_ids(raw: &[u8]) -> Vec<i64> {
    let start = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let mut rest = &raw[start..];
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok())
            .expect("a chunk size line");
        let data = &rest[line_end + 2..];
        if size == 0 || data.len() < size + 2 {
            break;
        }
        body.extend_from_slice(&data[..size]);
        rest = &data[size + 2..];
    }
    let text = String::from_utf8_lossy(&body);
    let mut ids = Vec::new();
    let mut blocks = text.split("\n\n").peekable();
    while let Some(block) = blocks.next() {
        // The last piece has no blank line after it: incomplete.
        if blocks.peek().is_none() {
            break;
        }
        let message = parse(block);
        if !message.comment {
            ids.push(message.id.parse().expect("an event id"));
        }
    }
    ids
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_without_slowing_ingest_or_other_streams() {
    let write_timeout = StdDuration::from_secs(2);
    let app = TestApp::spawn_with(&["--write-timeout-seconds", "2"]).await;
    let admin = app.admin_token().await;
    let (_, token) = app.host_with_token("web-01").await;
    let (mut stalled, mut raw) = stalled_stream(&app.address, &admin).await;
    let mut reading = open(&app.address, "", Some(&admin), None).await;

    // 100 containers, then 30 snapshots that change every state: 3,101 events of ~350 bytes,
    // over 1 MB, far more than the server's write buffer (~400 KiB) and both sockets' buffers.
    let snapshots = 31;
    let mut received = Vec::new();
    for n in 0..snapshots {
        let state = if n % 2 == 0 { 'a' } else { 'b' };
        let body = long_payload(&at(Duration::seconds(n - 60)), 100, state);
        let posted = Instant::now();
        post(&app, &token, &body).await;
        let took = posted.elapsed();
        assert!(took < StdDuration::from_secs(5), "post {n} took {took:?}");
        // The reading stream keeps up as it goes.
        let expected = if n == 0 { 101 } else { 100 };
        received.extend(reading.events(expected).await);
    }
    let written = app.count("SELECT count(*) FROM events").await;
    let all: Vec<i64> = {
        let rows = app
            .db
            .query("SELECT id FROM events ORDER BY id", &[])
            .await
            .unwrap();
        rows.iter().map(|row| row.get(0)).collect()
    };
    assert_eq!(written, 3101);
    let ids: Vec<i64> = received.iter().map(|m| m.id.parse().unwrap()).collect();
    assert_eq!(ids, all, "the reading stream got every event, in order");

    // Give the server the write timeout (and a margin) to give up on the stalled client, then
    // read what was left in the sockets: it ends, short of the events written.
    tokio::time::sleep(write_timeout + StdDuration::from_secs(1)).await;
    let drained = Instant::now();
    loop {
        use tokio::io::AsyncReadExt;
        let mut buf = [0; 16 * 1024];
        let read = tokio::time::timeout(StdDuration::from_secs(10), stalled.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the stalled connection still open after {:?} of reading",
                    drained.elapsed()
                )
            });
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        assert!(
            drained.elapsed() < StdDuration::from_secs(10),
            "the stalled connection kept sending"
        );
    }
    let got = message_ids(&raw);
    assert!(
        got.len() < all.len(),
        "cut off, not waited for: got {} of {}",
        got.len(),
        all.len()
    );
    assert_eq!(got, all[..got.len()], "what arrived came in order");

    // It resumes where it was cut off.
    let last = got.last().copied().unwrap_or(0);
    let mut resumed = open(&app.address, "", Some(&admin), Some(last)).await;
    let rest: Vec<i64> = resumed
        .events(all.len() - got.len())
        .await
        .iter()
        .map(|m| m.id.parse().unwrap())
        .collect();
    assert_eq!([got, rest].concat(), all, "every event once after resuming");
}
