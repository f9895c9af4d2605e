//! `deploy/compose.yaml` under podman-compose: the server comes up ready and takes the README's
//! first run; a containerised agent reports the host it is given; `podman stop` drains.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Compose, TempDir, http_client, output, run, snapshot};

const READY_WITHIN: Duration = Duration::from_secs(240);

fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test]
#[ignore = "needs podman and the images: scripts/test-packaging"]
async fn the_compose_stack_becomes_ready_healthy_and_takes_the_readme_first_run() {
    let compose = Compose::new("ready");
    compose.up(&[]);
    compose.wait_ready(READY_WITHIN).await;

    let server = compose.container("nexus-telemetry");
    let health = output(Command::new("podman").args(["healthcheck", "run", &server]));
    assert!(
        health.status.success(),
        "the image's health check fails on a ready server: {}",
        String::from_utf8_lossy(&health.stderr)
    );
    let user =
        run(Command::new("podman").args(["inspect", "--format", "{{.Config.User}}", &server]));
    assert_eq!(
        user.trim(),
        "10001:10001",
        "the server runs as its unprivileged user"
    );
    let pid = run(Command::new("podman").args(["inspect", "--format", "{{.State.Pid}}", &server]));
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let uids = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .unwrap();
    assert!(
        uids.split_whitespace().skip(1).all(|uid| uid == "10001"),
        "the server process runs as uid 10001: {uids}"
    );

    // The README's first run and its curl, as written, with podman-compose for `docker compose`
    // (and this project's port for the README's :8080).
    let readme = include_str!("../../README.md");
    let block = |marker: &str| {
        readme
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split("```sh").nth(1))
            .and_then(|block| block.split("```").next())
            .unwrap_or_else(|| panic!("README has a ```sh block after {marker}"))
    };
    let script = format!(
        "{}\nNEXUS_URL={}\n{}\n$NEXUS admin-token list --json",
        block("<!-- example:compose-first-run -->")
            .replace("docker compose", &compose.docker_compose_stand_in()),
        compose.base_url(),
        block("<!-- example:curl -->")
    );
    let output = output(
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(crate::support::repo_root())
            .envs(compose.env()),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().any(|line| line == "204"),
        "the README's first run and curl:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("\"operator\""),
        "the first run made the admin token `operator`: {stdout}"
    );

    let log = compose.logs("nexus-telemetry");
    assert!(
        !log.contains("NOTICE"),
        "the first start logs PostgreSQL notices:\n{log}"
    );
}

/// A Docker Engine API stand-in on a unix socket: a version and no containers.
fn serve_docker_api(socket: &Path) {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap_or(0);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let body = if path.contains("/version") {
                    r#"{"Version":"99.1.2-standin","ApiVersion":"1.47","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}"#
                } else if path.contains("/containers/json") {
                    "[]"
                } else {
                    r#"{"message":"page not found"}"#
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.47\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
                    body.len() + 1
                );
            });
        }
    });
}

/// A host root unlike this machine and the agent's container: 6 CPUs, 12 GiB, a 3 GiB disk
/// (a tmpfs), load 3.21, one physical NIC beside a bridge, and its own os-release.
fn make_host_root(root: &Path) {
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3g", "nexus-host-root"])
        .arg(root));
    let write = |path: &str, contents: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    };
    let mut stat = String::from("cpu  60000 0 6000 600000 0 0 0 0 0 0\n");
    for cpu in 0..6 {
        stat.push_str(&format!("cpu{cpu} 10000 0 1000 100000 0 0 0 0 0 0\n"));
    }
    write("proc/stat", &stat);
    write(
        "proc/meminfo",
        "MemTotal:       12582912 kB\nMemFree:         1048576 kB\nMemAvailable:    4194304 kB\n",
    );
    write("proc/loadavg", "3.21 2.00 1.00 3/456 7890\n");
    write(
        "proc/net/dev",
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
         \x20   lo: 5555    10    0    0    0     0          0         0  5555    10    0    0    0     0       0          0\n\
         \x20 eno1: 777777777 2000    0    0    0     0          0         0 333333333 1500    0    0    0     0       0          0\n\
         docker0: 999999 300    0    0    0     0          0         0 999999  250    0    0    0     0       0          0\n",
    );
    write(
        "etc/os-release",
        "PRETTY_NAME=\"Nexus Test Host OS 42\"\nNAME=\"Nexus Test Host OS\"\nID=nexustest\n",
    );
}

#[tokio::test]
#[ignore = "needs podman and the images: scripts/test-packaging"]
async fn a_containerised_agent_reports_the_host_root_it_is_given_not_its_own_container() {
    let host_root = TempDir::new("host-root");
    make_host_root(host_root.path());
    let docker = TempDir::new("docker-api");
    let socket = docker.path().join("docker.sock");
    serve_docker_api(&socket);

    let mut compose = Compose::new("agent");
    compose.up(&[]);
    compose.wait_ready(READY_WITHIN).await;
    let (host_id, token) = compose.host_with_token("docker-host-01");
    compose.set_env("NEXUS_AGENT_TOKEN", token);
    compose.set_env(
        "NEXUS_AGENT_HOST_ROOT_SOURCE",
        host_root.path().to_str().unwrap(),
    );
    compose.set_env("DOCKER_SOCKET", socket.to_str().unwrap());
    compose.up(&["agent"]);

    let query = format!(
        "SELECT concat_ws('|', m.memory_total_mb, m.disk_total_gb, m.load_average, m.network_rx_bytes,
                          m.network_tx_bytes, h.cpu_count, h.os, h.docker_version)
           FROM host_metric_snapshots m JOIN hosts h ON h.id = m.host_id
          WHERE m.host_id = {host_id} ORDER BY m.recorded_at LIMIT 1"
    );
    let start = Instant::now();
    let row = loop {
        let row = compose.sql(&query);
        if !row.is_empty() {
            break row;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no snapshot from the agent within 90 s; agent log:\n{}",
            compose.logs("nexus-agent")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(
        row, "12288|3|3.21|777777777|333333333|6|Nexus Test Host OS 42|99.1.2-standin",
        "memory, disk, load, physical NIC counters, CPUs, OS and Docker version of the given host"
    );
}

/// A snapshot with 200 containers: each write takes long enough that the stop finds some in flight.
fn busy_snapshot(recorded_at: &str) -> serde_json::Value {
    let mut body = snapshot(recorded_at);
    body["containers"] = (0..200)
        .map(|n| {
            serde_json::json!({
                "container_id": format!("{n:0>12x}"), "name": format!("service-{n}"),
                "image": "registry.example.com/app", "image_tag": "1.0", "state": "running",
                "status": "Up 2 hours", "health_status": "healthy",
                "metrics": {"cpu_percent": 1.5, "memory_usage_mb": 64, "memory_limit_mb": 512}
            })
        })
        .collect();
    body
}

#[tokio::test]
#[ignore = "needs podman and the images: scripts/test-packaging"]
async fn podman_stop_drains_the_server_without_losing_an_acknowledged_snapshot() {
    const POSTERS: usize = 8;
    const POSTS_EACH: usize = 50; // under the per-token limit of 60 a minute
    let compose = Compose::new("drain");
    compose.up(&[]);
    compose.wait_ready(READY_WITHIN).await;
    let tokens: Vec<(i64, String)> = (0..POSTERS)
        .map(|n| compose.host_with_token(&format!("drain-{n}")))
        .collect();

    let client = http_client();
    let (acknowledged_tx, mut acknowledged_rx) = tokio::sync::mpsc::unbounded_channel();
    let base = chrono::Utc::now() - chrono::Duration::minutes(10);
    let mut posters = Vec::new();
    for (poster, (host_id, token)) in tokens.into_iter().enumerate() {
        let (client, acknowledged) = (client.clone(), acknowledged_tx.clone());
        let url = format!("{}/agent/telemetry", compose.base_url());
        posters.push(tokio::spawn(async move {
            for n in 0..POSTS_EACH {
                let recorded_at =
                    rfc3339(base + chrono::Duration::milliseconds((poster * 1000 + n) as i64));
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&busy_snapshot(&recorded_at))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                match response.map(|r| r.status().as_u16()) {
                    Ok(204) => acknowledged.send((host_id, recorded_at)).unwrap(),
                    Ok(_) | Err(_) => return, // the server has stopped taking requests
                }
            }
        }));
    }
    drop(acknowledged_tx);
    // Stop while the posters are busy: after the first acknowledgements.
    let mut acknowledged = BTreeSet::new();
    while acknowledged.len() < POSTERS {
        acknowledged.insert(
            acknowledged_rx
                .recv()
                .await
                .expect("acknowledgements before the stop"),
        );
    }
    let server = compose.container("nexus-telemetry");
    run(Command::new("podman").args(["stop", "-t", "40", &server]));
    for poster in posters {
        poster.await.unwrap();
    }
    while let Some(ack) = acknowledged_rx.recv().await {
        acknowledged.insert(ack);
    }
    let exit_code =
        run(Command::new("podman").args(["inspect", "--format", "{{.State.ExitCode}}", &server]));
    assert_eq!(
        exit_code.trim(),
        "0",
        "the server exits 0 after draining, not killed"
    );
    assert!(
        acknowledged.len() < POSTERS * POSTS_EACH,
        "the stop came after every post: nothing was in flight"
    );

    let stored: BTreeSet<(i64, String)> = compose
        .sql(
            "SELECT host_id || ' ' || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
               FROM host_metric_snapshots",
        )
        .lines()
        .map(|line| {
            let (host, at) = line.split_once(' ').unwrap();
            (host.parse().unwrap(), at.to_owned())
        })
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged snapshots are missing after the stop: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}
