//! What real Docker engines report is stored as reported, and a container that breaks the
//! contract costs only itself: the host and the other containers are stored.

use chrono::Duration;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, payload};

/// One container of `payload` changed by `shape`, posted: what is stored for it.
async fn post_shape(app: &TestApp, token: &str, shape: impl Fn(&mut Value)) -> (u16, Value) {
    let mut body = payload(
        &at(Duration::zero()),
        &[("a1", "running"), ("b2", "running")],
    );
    shape(&mut body["containers"][1]);
    let response = app.post_telemetry(token, &body).await;
    let status = response.status().as_u16();
    let stored = app
        .db
        .query_opt(
            "SELECT jsonb_build_object('status', status, 'ports', ports, 'labels', labels) \
             FROM containers WHERE container_id = 'b2'",
            &[],
        )
        .await
        .unwrap()
        .map(|row| row.get::<_, Value>(0))
        .unwrap_or(Value::Null);
    (status, stored)
}

#[tokio::test]
async fn every_oversized_shape_docker_produces_is_stored_as_sent() {
    let long_port = "[2001:db8:85a3:08d3:1319:8a2e:0370:7348]:60000-60063->60000-60063/udp";
    assert_eq!(long_port.len(), 69);
    let many_ports: Vec<String> = (0..65)
        .flat_map(|i| {
            [
                format!("0.0.0.0:{}->{}/udp", 5000 + i, 5000 + i),
                format!("[::]:{}->{}/udp", 5000 + i, 5000 + i),
            ]
        })
        .collect();
    let description = "An OCI image description. ".repeat(60);
    assert!(description.len() > 1024);
    let many_labels: serde_json::Map<String, Value> = (0..200)
        .map(|i| {
            (
                format!("org.example.label-{i:03}"),
                json!(format!("value {i}")),
            )
        })
        .collect();
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "a 69-character IPv6 port range",
            "ports",
            json!([long_port]),
        ),
        ("130 port entries", "ports", json!(many_ports)),
        (
            "a label value over 1,024 characters",
            "labels",
            json!({"org.opencontainers.image.description": description}),
        ),
        ("200 labels", "labels", Value::Object(many_labels)),
        (
            "Docker's status with its health note",
            "status",
            json!("Up About a minute (health: starting)"),
        ),
        ("a 128-character status", "status", json!("U".repeat(128))),
    ];
    for (case, field, value) in cases {
        let app = TestApp::spawn().await;
        let (_, token) = app.host_with_token("docker-01").await;

        let (status, stored) = post_shape(&app, &token, |c| c[field] = value.clone()).await;

        assert_eq!(status, 204, "{case}");
        assert_eq!(stored[field], value, "{case}: stored as sent");
        assert_eq!(app.written().await, (1, 2, 2), "{case}: everything stored");
    }
}

/// A change that makes a container break the contract.
type Shape = fn(&mut Value);

#[tokio::test]
async fn a_container_that_breaks_the_contract_is_left_out_and_named_while_the_rest_is_stored() {
    let cases: [(&str, Shape); 7] = [
        ("a name over 255 characters", |c| {
            c["name"] = json!("n".repeat(256))
        }),
        ("a state over 32 characters", |c| {
            c["state"] = json!("s".repeat(33))
        }),
        ("no name", |c| {
            c.as_object_mut().unwrap().remove("name");
        }),
        ("a negative metric", |c| {
            c["metrics"]["cpu_percent"] = json!(-1)
        }),
        ("a port that is not a string", |c| c["ports"] = json!([80])),
        ("a NUL in a label", |c| {
            c["labels"] = json!({"k": "a\u{0}b"})
        }),
        ("not an object", |c| *c = json!("b2")),
    ];
    for (case, shape) in cases {
        let app = TestApp::spawn().await;
        let (host, token) = app.host_with_token("docker-01").await;
        let mut body = payload(
            &at(Duration::zero()),
            &[("a1", "running"), ("b2", "running"), ("c3", "exited")],
        );
        shape(&mut body["containers"][1]);

        let response = app.post_telemetry(&token, &body).await;

        assert_eq!(response.status(), 204, "{case}");
        assert_eq!(
            response.headers()["x-dropped-containers"],
            "1",
            "{case}: the agent learns which container was left out"
        );
        assert_eq!(
            app.written().await,
            (1, 2, 2),
            "{case}: host and the others stored"
        );
        assert_eq!(
            app.count("SELECT count(*) FROM containers WHERE container_id IN ('a1', 'c3')")
                .await,
            2,
            "{case}"
        );
        assert_eq!(app.host_status(host).await, "online", "{case}");
    }
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("docker-01").await;
    let response = app
        .post_telemetry(
            &token,
            &payload(&at(Duration::zero()), &[("a1", "running")]),
        )
        .await;
    assert!(
        response.headers().get("x-dropped-containers").is_none(),
        "no header when nothing was left out"
    );
    assert!(
        app.get_text("/metrics")
            .await
            .contains("nexus_containers_dropped_total"),
        "dropped containers are counted"
    );
}

#[tokio::test]
async fn a_host_with_more_than_500_containers_is_stored_whole() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("ci-runner").await;
    let ids: Vec<String> = (0..600).map(|i| format!("c{i:03}")).collect();
    let containers: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "running")).collect();

    let response = app
        .post_telemetry(&token, &payload(&at(Duration::zero()), &containers))
        .await;

    assert_eq!(response.status(), 204);
    assert_eq!(app.written().await, (1, 600, 600));
}
