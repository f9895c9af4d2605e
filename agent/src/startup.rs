//! From parsed configuration to a running agent: checks the configuration, wires the
//! collectors, buffer and sender together, and handles `--once` / `--once --print`.

use std::io::Write;
use std::time::Duration;

use crate::agent::{Agent, EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_UNAUTHORIZED};
use crate::buffer::{PendingSnapshot, SnapshotBuffer};
use crate::collector::Collector;
use crate::config::Cli;
use crate::docker::DockerCollector;
use crate::host::{HostCollector, HostPaths};
use crate::sender::{Delivery, Sender};

/// Runs the agent as configured and returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let destination = match cli.destination() {
        Ok(destination) => destination,
        Err(error) => {
            eprintln!("nexus-agent: configuration error: {error}");
            return EXIT_CONFIG;
        }
    };
    let mut collector = collector(&cli);
    let Some(destination) = destination else {
        return print_once(&mut collector).await;
    };
    let sender = match Sender::new(
        &destination.url,
        &destination.token,
        cli.gzip,
        Duration::from_secs(cli.connect_timeout_seconds),
        Duration::from_secs(cli.request_timeout_seconds),
    ) {
        Ok(sender) => sender,
        Err(error) => {
            eprintln!("nexus-agent: configuration error: NEXUS_URL: {error}");
            return EXIT_CONFIG;
        }
    };
    if cli.once {
        return send_once(&mut collector, sender).await;
    }
    let max_age = chrono::Duration::seconds(
        i64::try_from(cli.max_snapshot_age_seconds).unwrap_or(i64::MAX / 1000),
    );
    let buffer = match SnapshotBuffer::new(cli.buffer_max_bytes, max_age, cli.spool_dir.clone()) {
        Ok(buffer) => buffer,
        Err(error) => {
            tracing::error!(
                "cannot use the spool directory {:?}: {error}",
                cli.spool_dir
            );
            return EXIT_FAILURE;
        }
    };
    Agent::new(collector, sender, buffer, cli.interval())
        .run()
        .await
}

fn collector(cli: &Cli) -> Collector {
    let host = HostCollector::new(HostPaths::under(&cli.host_root, &cli.disk_mount));
    let docker = DockerCollector::new(
        cli.docker_host.clone(),
        Duration::from_secs(cli.docker_timeout_seconds),
        usize::try_from(cli.docker_concurrency).unwrap_or(8),
    );
    Collector::new(host, docker)
}

/// Takes a baseline, then the snapshot one second later so that rates are filled in.
async fn one_snapshot(collector: &mut Collector) -> nexus_contract::TelemetryPayload {
    collector.prime().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    collector.snapshot().await
}

async fn print_once(collector: &mut Collector) -> u8 {
    let payload = one_snapshot(collector).await;
    let mut stdout = std::io::stdout().lock();
    match serde_json::to_writer_pretty(&mut stdout, &payload) {
        Ok(()) => {
            let _ = writeln!(stdout);
            EXIT_OK
        }
        Err(error) => {
            eprintln!("nexus-agent: could not print the payload: {error}");
            EXIT_FAILURE
        }
    }
}

async fn send_once(collector: &mut Collector, mut sender: Sender) -> u8 {
    let payload = one_snapshot(collector).await;
    let snapshot = match PendingSnapshot::encode(&payload) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            tracing::error!("could not encode the snapshot: {error}");
            return EXIT_FAILURE;
        }
    };
    match sender.deliver(&snapshot).await {
        Delivery::Stored => {
            tracing::info!("snapshot delivered");
            EXIT_OK
        }
        Delivery::Unauthorized => {
            tracing::error!("the server refused the agent token (401): check NEXUS_AGENT_TOKEN");
            EXIT_UNAUTHORIZED
        }
        other => {
            tracing::error!("the snapshot was not delivered: {other:?}");
            EXIT_FAILURE
        }
    }
}
