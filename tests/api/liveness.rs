//! Host liveness: silent hosts go offline, telemetry brings them back, each transition once.

use std::time::Duration as StdDuration;

use chrono::Duration;

use crate::helpers::{TestApp, at, payload};

async fn events(app: &TestApp, host: i64) -> Vec<String> {
    let rows = app
        .db
        .query(
            "SELECT kind FROM host_events WHERE host_id = $1 ORDER BY id",
            &[&host],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn first_contact_is_an_online_event_recorded_once() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;

    app.post_telemetry(&token, &payload(&at(Duration::seconds(-30)), &[]))
        .await;
    app.post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
        .await;

    assert_eq!(events(&app, host).await, ["online"]);
}

#[tokio::test]
async fn a_silent_host_goes_offline_within_the_timeout_and_recovers_on_telemetry() {
    let app = TestApp::spawn_with(&["--heartbeat-timeout-seconds", "4"]).await;
    let (host, token) = app.host_with_token("web-01").await;
    let (pending, _) = app.host_with_token("never-seen").await;
    app.post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
        .await;

    // Timeout 4 s, checked every second: offline after at most ~5 s.
    let mut waited = StdDuration::ZERO;
    while app.host_status(host).await != "offline" {
        assert!(
            waited < StdDuration::from_secs(8),
            "still {} after {waited:?}",
            app.host_status(host).await
        );
        tokio::time::sleep(StdDuration::from_millis(250)).await;
        waited += StdDuration::from_millis(250);
    }
    assert!(
        waited >= StdDuration::from_secs(3),
        "not before the timeout: {waited:?}"
    );
    assert_eq!(
        app.host_status(pending).await,
        "pending",
        "pending hosts are never touched"
    );

    app.post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
        .await;

    assert_eq!(app.host_status(host).await, "online");
    assert_eq!(events(&app, host).await, ["online", "offline", "recovered"]);
    assert_eq!(events(&app, pending).await, Vec::<String>::new());
}

#[tokio::test]
async fn racing_detectors_record_a_transition_once() {
    let app = TestApp::spawn().await;
    let mut hosts = Vec::new();
    for i in 0..20 {
        let host = app.create_host(&format!("host {i}")).await;
        app.db
            .execute("UPDATE hosts SET status = 'online', last_seen_at = now() - interval '10 minutes' WHERE id = $1", &[&host])
            .await
            .unwrap();
        hosts.push(host);
    }
    let archived = app.create_host("archived").await;
    app.db.execute("UPDATE hosts SET status = 'archived', last_seen_at = now() - interval '1 day' WHERE id = $1", &[&archived]).await.unwrap();

    let timeout = StdDuration::from_secs(120);
    let detectors: Vec<_> = (0..8)
        .map(|_| {
            let store = app.store.clone();
            tokio::spawn(async move { store.mark_silent_hosts_offline(timeout).await.unwrap() })
        })
        .collect();
    let mut flipped = Vec::new();
    for detector in detectors {
        flipped.extend(detector.await.unwrap());
    }

    // The server's own detector runs too and may take some hosts first; no host is flipped
    // twice, and each gets exactly one offline event, whoever recorded it.
    flipped.sort();
    let mut once = flipped.clone();
    once.dedup();
    assert_eq!(flipped, once, "no host flipped by two detectors");
    assert!(flipped.iter().all(|host| hosts.contains(host)));
    let offline: Vec<i64> = app
        .db
        .query(
            "SELECT host_id FROM host_events WHERE kind = 'offline' ORDER BY host_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(offline, hosts, "one offline event per host");
    assert_eq!(app.host_status(archived).await, "archived");
}
