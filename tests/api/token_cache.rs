//! The in-memory token index stays exact across server processes sharing one database:
//! a revocation through one server (or plain SQL) is refused by the others on the next request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_telemetry::domain::token::TokenHash;
use nexus_telemetry::store::agent_cache::{
    AgentTokenCache, LISTENER_APPLICATION_NAME, Lookup, Standing,
};
use nexus_test_support::metrics;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, at, call, payload};

/// A snapshot `n` seconds old, so repeated posts write distinct rows.
fn snapshot(n: i64) -> Value {
    payload(&at(chrono::Duration::seconds(-n)), &[])
}

async fn post(app: &TestApp, address: &str, token: &str, n: i64) -> u16 {
    app.http
        .post(format!("{address}/agent/telemetry"))
        .bearer_auth(token)
        .json(&snapshot(n))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until `condition` holds, for at most 5 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_token_revoked_through_one_server_is_refused_by_another_on_the_next_request() {
    let app = TestApp::spawn().await;
    let other = app.spawn_another_server().await;
    let admin = app.admin_token().await;
    let (host, token) = app.host_with_token("web").await;
    let token_id: i64 = app
        .db
        .query_one("SELECT id FROM agent_tokens", &[])
        .await
        .unwrap()
        .get(0);
    for n in 1..=3 {
        assert_eq!(post(&app, &other, &token, n).await, 204, "warms the cache");
    }

    let revoked = app
        .admin(
            Method::DELETE,
            &format!("/hosts/{host}/tokens/{token_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);

    assert_eq!(post(&app, &other, &token, 4).await, 401);
    assert_eq!(post(&app, &app.address, &token, 5).await, 401);
}

#[tokio::test]
async fn revocation_rotation_and_archiving_in_sql_are_refused_by_every_server() {
    let app = TestApp::spawn().await;
    let servers = [app.address.clone(), app.spawn_another_server().await];
    let admin = app.admin_token().await;
    let (revoked_host, revoked) = app.host_with_token("revoked").await;
    let (archived_host, archived) = app.host_with_token("archived").await;
    let (rotated_host, rotated) = app.host_with_token("rotated").await;
    for (i, server) in servers.iter().enumerate() {
        for token in [&revoked, &archived, &rotated] {
            assert_eq!(post(&app, server, token, i as i64 + 1).await, 204);
        }
    }

    app.db
        .execute(
            "UPDATE agent_tokens SET revoked_at = now() WHERE host_id = $1",
            &[&revoked_host],
        )
        .await
        .unwrap();
    app.db
        .execute(
            "UPDATE hosts SET status = 'archived' WHERE id = $1",
            &[&archived_host],
        )
        .await
        .unwrap();
    let rotated_id: i64 = app
        .db
        .query_one(
            "SELECT id FROM agent_tokens WHERE host_id = $1",
            &[&rotated_host],
        )
        .await
        .unwrap()
        .get(0);
    let replacement = call(
        &app.http,
        &servers[1],
        Method::POST,
        &format!("/hosts/{rotated_host}/tokens/{rotated_id}/rotate"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(replacement.status, 201);

    for (i, server) in servers.iter().enumerate() {
        for token in [&revoked, &archived, &rotated] {
            assert_eq!(
                post(&app, server, token, 10 + i as i64).await,
                401,
                "server {i} refuses a token that is no longer valid"
            );
        }
        let new_token = replacement.body["token"].as_str().unwrap();
        assert_eq!(post(&app, server, new_token, 20 + i as i64).await, 204);
    }
}

#[tokio::test]
async fn notifications_keep_the_index_exact_for_new_revoked_and_archived_tokens() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web").await;
    let (archived_host, archived) = app.host_with_token("archived").await;
    let cache = Arc::new(AgentTokenCache::new());
    let listener = app.store.spawn_agent_cache_listener(cache.clone());
    eventually("the listener is connected", || cache.is_live()).await;
    let standing = |bearer: &str| match cache.lookup(&TokenHash::of(bearer)) {
        Lookup::Known(token) => Some(token.standing),
        _ => None,
    };
    assert_eq!(
        standing(&token),
        Some(Standing::Active),
        "loaded at connect"
    );
    assert_eq!(standing("nxa_unknown"), None);

    let (_, fresh) = app.host_with_token("fresh").await;
    eventually("a new token is known", || {
        standing(&fresh) == Some(Standing::Active)
    })
    .await;
    app.db
        .execute(
            "UPDATE agent_tokens SET revoked_at = now() WHERE host_id = $1",
            &[&host],
        )
        .await
        .unwrap();
    eventually("the revocation is known", || {
        standing(&token) == Some(Standing::Revoked)
    })
    .await;
    app.db
        .execute(
            "UPDATE hosts SET archived_at = now() WHERE id = $1",
            &[&archived_host],
        )
        .await
        .unwrap();
    eventually("the archiving is known", || {
        standing(&archived) == Some(Standing::HostArchived)
    })
    .await;
    let stamped = app
        .db
        .execute("UPDATE agent_tokens SET last_used_at = now()", &[])
        .await
        .unwrap();
    assert_eq!(stamped, 3);
    assert_eq!(cache.len(), 3, "every token, valid or not, is in the index");
    listener.abort();
}

#[tokio::test]
async fn a_lost_listener_connection_empties_the_index_and_stops_its_use_until_it_reconnects() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web").await;
    let cache = Arc::new(AgentTokenCache::new());
    assert_eq!(cache.lookup(&TokenHash::of(&token)), Lookup::NotLive);
    let listener = app.store.spawn_agent_cache_listener(cache.clone());
    eventually("the listener is connected", || cache.is_live()).await;
    assert!(matches!(
        cache.lookup(&TokenHash::of(&token)),
        Lookup::Known(_)
    ));

    let killed = app
        .db
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database()",
            &[&LISTENER_APPLICATION_NAME],
        )
        .await
        .unwrap();
    assert!(killed >= 1, "the listeners were found");

    eventually("the index is emptied", || cache.is_empty()).await;
    eventually("the listener reconnects", || cache.is_live()).await;
    assert!(
        matches!(cache.lookup(&TokenHash::of(&token)), Lookup::Known(_)),
        "the index is loaded again once reconnected"
    );
    listener.abort();
}

#[tokio::test]
async fn a_burst_of_token_creations_is_reread_in_a_few_queries_and_then_costs_no_lookup() {
    let app = TestApp::spawn().await;
    let (_, first) = app.host_with_token("first").await;
    assert_eq!(post(&app, &app.address, &first, 1).await, 204);
    let burst = 2_000;
    let bearers: Vec<String> = (0..burst).map(|i| format!("nxa_burst_{i:05}")).collect();
    let hashes: Vec<String> = bearers
        .iter()
        .map(|b| TokenHash::of(b).as_str().to_owned())
        .collect();
    let names: Vec<String> = (0..burst).map(|i| format!("burst-{i:05}")).collect();
    let before = app.get_text("/metrics").await;
    // One transaction: its 2,000 notifications arrive together at its commit.
    app.db
        .execute(
            "WITH h AS (INSERT INTO hosts (name, slug) SELECT n, n FROM unnest($1::text[]) n \
             RETURNING id, name) \
             INSERT INTO agent_tokens (host_id, name, hashed_token) \
             SELECT h.id, 'burst', t.hash FROM h JOIN unnest($1::text[], $2::text[]) t(name, hash) \
             ON t.name = h.name",
            &[&names, &hashes],
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let settled = loop {
        let text = app.get_text("/metrics").await;
        if metrics::sum(&text, "nexus_token_index_tokens") > burst as f64 {
            break text;
        }
        assert!(Instant::now() < deadline, "the index never held the burst");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rereads = metrics::sum(&settled, "nexus_token_index_rereads_total")
        - metrics::sum(&before, "nexus_token_index_rereads_total");
    assert!(
        rereads <= 20.0,
        "{burst} notifications took {rereads} re-reads"
    );

    for (n, bearer) in bearers.iter().step_by(100).enumerate() {
        assert_eq!(post(&app, &app.address, bearer, n as i64).await, 204);
    }
    let after = app.get_text("/metrics").await;
    assert_eq!(
        metrics::sum(&after, "nexus_token_index_database_lookups_total"),
        metrics::sum(&settled, "nexus_token_index_database_lookups_total"),
        "a settled index answers every token from memory"
    );
}
