//! `--read-database-url`: the read API on a real streaming standby (`pg_basebackup -R`), and
//! what happens when the standby lags or goes down: reads fall back to the primary.

use std::time::Duration;

use chrono::Duration as Age;
use nexus_telemetry::startup::Application;
use nexus_telemetry::store::Store;
use nexus_telemetry::store::replica::{Reads, ReplicaState};
use nexus_test_support::clusters::{SMALL, StreamingPair, pg_root, wait_for};
use reqwest::Method;

use crate::helpers::{at, call, connect, http_client, payload, serve_args};

struct Server {
    address: String,
    reads: Reads,
}

async fn serve(pair: &StreamingPair, extra: &[&str]) -> Server {
    let standby = pair.standby_url();
    let mut flags = vec!["--read-database-url", standby.as_str()];
    flags.extend_from_slice(extra);
    let app = Application::build(&serve_args(&pair.primary_url(), &flags))
        .await
        .expect("the app builds");
    let server = Server {
        address: format!("http://{}", app.local_addr),
        reads: app.reads(),
    };
    tokio::spawn(app.run(std::future::pending()));
    server
}

fn is_fresh(server: &Server) -> bool {
    matches!(
        server.reads.replica_state(),
        Some(ReplicaState::Fresh { .. })
    )
}

/// The container ids `GET /hosts/{host}/containers` lists on `server` (sorted), or the status.
async fn containers(server: &Server, host: i64, admin: &str) -> Result<Vec<String>, u16> {
    let answer = call(
        &http_client(),
        &server.address,
        Method::GET,
        &format!("/hosts/{host}/containers"),
        Some(admin),
        None,
    )
    .await;
    if answer.status != 200 {
        return Err(answer.status);
    }
    let mut ids: Vec<String> = answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["container_id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    Ok(ids)
}

async fn post(server: &Server, token: &str, containers: &[(&str, &str)], age: i64) {
    let status = http_client()
        .post(format!("{}/agent/telemetry", server.address))
        .bearer_auth(token)
        .json(&payload(&at(Age::seconds(-age)), containers))
        .send()
        .await
        .expect("request sent")
        .status();
    assert_eq!(status, 204, "the snapshot is stored on the primary");
}

#[tokio::test]
async fn reads_go_to_a_fresh_replica_and_to_the_primary_while_it_lags_or_is_down() {
    let pair = StreamingPair::start(&pg_root(), SMALL)
        .await
        .expect("a primary and its standby start");
    // Allowed staleness 2 s: this server leaves a lagging standby.
    let server = serve(&pair, &["--read-max-lag-seconds", "2"]).await;
    // Allowed staleness 1 h: this one keeps reading from the standby, which shows that reads
    // really go there (it answers what the standby has, not what the primary has).
    let patient = serve(&pair, &["--no-migrate", "--read-max-lag-seconds", "3600"]).await;
    let primary = Store::new(&serve_args(&pair.primary_url(), &[]).db.settings()).unwrap();
    let host = primary.create_host("web-01", "web-01").await.unwrap().id;
    let token = primary
        .issue_agent_token(host, "test", false)
        .await
        .unwrap()
        .token
        .plaintext
        .clone();
    let admin = primary
        .create_admin_token("test")
        .await
        .unwrap()
        .token
        .plaintext
        .clone();
    let one = vec!["c1".to_owned()];
    let two = vec!["c1".to_owned(), "c2".to_owned()];

    post(&server, &token, &[("c1", "running")], 20).await;
    wait_for(
        "both servers read from a caught-up standby",
        Duration::from_secs(30),
        || async {
            is_fresh(&server)
                && is_fresh(&patient)
                && containers(&patient, host, &admin).await == Ok(one.clone())
        },
    )
    .await;

    // The standby stops replaying: the primary moves on without it.
    let standby = connect(&pair.standby_url()).await;
    standby
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    wait_for("replay is paused", Duration::from_secs(10), || async {
        standby
            .query_one("SELECT pg_get_wal_replay_pause_state()", &[])
            .await
            .unwrap()
            .get::<_, String>(0)
            == "paused"
    })
    .await;
    post(&server, &token, &[("c1", "running"), ("c2", "running")], 10).await;

    assert_eq!(
        containers(&patient, host, &admin).await,
        Ok(one.clone()),
        "a server that tolerates the lag answers from the standby, without the newest write"
    );
    wait_for(
        "the strict server sees the standby lagging",
        Duration::from_secs(15),
        || async {
            matches!(
                server.reads.replica_state(),
                Some(ReplicaState::Lagging { .. })
            )
        },
    )
    .await;
    assert_eq!(
        containers(&server, host, &admin).await,
        Ok(two.clone()),
        "while the standby lags, reads come from the primary"
    );

    standby
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    wait_for(
        "the standby catches up and serves reads again",
        Duration::from_secs(30),
        || async {
            is_fresh(&server) && containers(&patient, host, &admin).await == Ok(two.clone())
        },
    )
    .await;

    // Down: the very next read, before any probe has noticed, is answered by the primary.
    pair.stop_standby();
    assert_eq!(containers(&server, host, &admin).await, Ok(two.clone()));
    wait_for(
        "the standby is seen down",
        Duration::from_secs(15),
        || async { server.reads.replica_state() == Some(ReplicaState::Down) },
    )
    .await;
    post(&server, &token, &[("c3", "running")], 5).await;
    assert_eq!(
        containers(&server, host, &admin).await,
        Ok(vec!["c1".into(), "c2".into(), "c3".into()]),
        "with the standby down, writes go on and reads come from the primary"
    );
    let range = format!(
        "since={}&until={}",
        at(Age::hours(-1)).replace('+', "%2B"),
        at(Age::minutes(1)).replace('+', "%2B")
    );
    for path in [
        format!("/hosts/{host}/metrics?{range}"),
        format!("/hosts/{host}/events"),
        "/hosts".to_owned(),
    ] {
        let answer = call(
            &http_client(),
            &server.address,
            Method::GET,
            &path,
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }
}
