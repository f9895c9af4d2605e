//! Docker collection against a fake Docker Engine API on a unix socket, answering with recorded
//! bodies (`tests/fixtures/docker/`).

mod support;

use std::path::Path;
use std::time::Duration;

use nexus_agent::collector::Collector;
use nexus_agent::docker::DockerCollector;
use nexus_agent::host::{HostCollector, HostPaths};
use nexus_contract::ContainerPayload;
use support::fake_docker::{FakeDocker, generated_routes, recorded_routes};

const WEB: &str = "3f4e8a1b2c9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";
const APP: &str = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b";
const JOB: &str = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b";
const GONE: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn collector_for(fake: &FakeDocker) -> DockerCollector {
    DockerCollector::new(fake.docker_host(), Duration::from_secs(5), 4)
}

fn find<'a>(containers: &'a [ContainerPayload], id: &str) -> &'a ContainerPayload {
    containers
        .iter()
        .find(|container| container.container_id == id)
        .unwrap_or_else(|| panic!("container {id} missing"))
}

#[tokio::test]
async fn every_container_is_reported_running_or_not_with_its_docker_ps_fields() {
    let fake = FakeDocker::start(recorded_routes(), Duration::ZERO);
    let reading = collector_for(&fake)
        .collect()
        .await
        .expect("engine reachable");

    assert_eq!(reading.version.as_deref(), Some("26.1.4"));
    assert_eq!(reading.containers.len(), 4);
    let web = find(&reading.containers, WEB);
    assert_eq!(web.name, "shop-web-1");
    assert_eq!(
        (web.image.as_str(), web.image_tag.as_deref()),
        ("nginx", Some("1.25"))
    );
    assert_eq!(web.state.as_deref(), Some("running"));
    assert_eq!(web.status.as_deref(), Some("Up 3 hours (healthy)"));
    assert_eq!(web.health_status.as_deref(), Some("healthy"));
    assert_eq!(
        web.ports.as_deref(),
        Some(
            &[
                "0.0.0.0:8080->80/tcp".to_owned(),
                "443/tcp".to_owned(),
                "[::]:8080->80/tcp".to_owned()
            ][..]
        )
    );
    let labels = web.labels.as_ref().unwrap();
    assert_eq!(labels.get("com.docker.compose.service"), Some("web"));

    let job = find(&reading.containers, JOB);
    assert_eq!(job.state.as_deref(), Some("exited"));
    assert_eq!(job.health_status.as_deref(), Some("none"), "no healthcheck");
    assert_eq!(job.metrics, None, "no stats for a stopped container");
    assert_eq!(
        (job.image.as_str(), job.image_tag.as_deref()),
        (
            "busybox",
            Some("sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7")
        )
    );
}

#[tokio::test]
async fn a_registry_with_a_port_stays_part_of_the_image_name() {
    let fake = FakeDocker::start(recorded_routes(), Duration::ZERO);
    let reading = collector_for(&fake).collect().await.unwrap();
    let app = find(&reading.containers, APP);
    assert_eq!(app.image, "localhost:5000/app");
    assert_eq!(app.image_tag.as_deref(), Some("1.2"));
    assert_eq!(
        app.ports.as_deref(),
        Some(&["127.0.0.1:5353->5353/udp".to_owned(), "8000/tcp".to_owned()][..])
    );
}

#[tokio::test]
async fn docker_zero_time_becomes_null_and_real_times_keep_their_precision() {
    let fake = FakeDocker::start(recorded_routes(), Duration::ZERO);
    let reading = collector_for(&fake).collect().await.unwrap();

    let web = find(&reading.containers, WEB);
    assert_eq!(web.finished_at, None);
    assert_eq!(
        web.started_at.unwrap().to_rfc3339(),
        "2024-05-01T10:00:00.123456789+00:00"
    );
    let job = find(&reading.containers, JOB);
    assert_eq!(
        job.finished_at.unwrap().to_rfc3339(),
        "2024-04-28T08:05:00.500+00:00"
    );
}

#[tokio::test]
async fn restarts_exit_code_and_oom_verdict_come_from_inspect_with_no_exit_code_while_running() {
    let fake = FakeDocker::start(recorded_routes(), Duration::ZERO);
    let reading = collector_for(&fake).collect().await.unwrap();
    let lifecycle = |container: &ContainerPayload| {
        (
            container.restart_count,
            container.exit_code,
            container.oom_killed,
        )
    };

    let app = find(&reading.containers, APP);
    assert_eq!(
        lifecycle(app),
        (Some(1), None, Some(false)),
        "running, restarted once"
    );
    let job = find(&reading.containers, JOB);
    assert_eq!(
        lifecycle(job),
        (Some(0), Some(0), Some(false)),
        "exited cleanly"
    );
    let gone = find(&reading.containers, GONE);
    assert_eq!(
        lifecycle(gone),
        (None, None, None),
        "no inspect answer, nothing known"
    );
}

#[tokio::test]
async fn running_containers_get_the_numbers_docker_stats_shows_on_cgroup_v2() {
    let fake = FakeDocker::start(recorded_routes(), Duration::ZERO);
    let reading = collector_for(&fake).collect().await.unwrap();
    let metrics = find(&reading.containers, WEB).metrics.clone().unwrap();

    // (400 − 300) ms of container CPU over 2 s of system CPU, times 2 online CPUs.
    assert_eq!(metrics.cpu_percent, Some(10.0));
    // 100 MiB usage minus 20 MiB inactive_file.
    assert_eq!(metrics.memory_usage_mb, Some(80));
    assert_eq!(metrics.memory_limit_mb, Some(8192));
    assert_eq!(metrics.network_rx_bytes, Some(1500));
    assert_eq!(metrics.network_tx_bytes, Some(2250));
    assert_eq!(metrics.block_read_bytes, Some(5120));
    assert_eq!(metrics.block_write_bytes, Some(8192));
}

#[tokio::test]
async fn one_shot_stats_take_cpu_percent_from_the_previous_tick_on_cgroup_v1() {
    let fake = FakeDocker::start(recorded_routes(), Duration::ZERO);
    let mut collector = collector_for(&fake);

    let first = collector.collect().await.unwrap();
    let first = find(&first.containers, APP).metrics.clone().unwrap();
    assert_eq!(
        first.cpu_percent, None,
        "one-shot stats carry no previous sample"
    );
    // 200 MiB usage minus 50 MiB total_inactive_file (not `cache`).
    assert_eq!(first.memory_usage_mb, Some(150));
    assert_eq!(first.memory_limit_mb, Some(512));
    assert_eq!(
        first.block_read_bytes,
        Some(1_049_600),
        "Read summed over devices"
    );
    assert_eq!(first.block_write_bytes, Some(2_097_152));

    let second = collector.collect().await.unwrap();
    let second = find(&second.containers, APP).metrics.clone().unwrap();
    // 0.5 s of container CPU over 4 s of system CPU, times 4 CPUs (from percpu_usage).
    assert_eq!(second.cpu_percent, Some(50.0));
}

#[tokio::test]
async fn a_container_removed_mid_tick_keeps_its_list_entry_without_metrics() {
    let fake = FakeDocker::start(recorded_routes(), Duration::ZERO);
    let reading = collector_for(&fake).collect().await.unwrap();
    let gone = find(&reading.containers, GONE);
    assert_eq!(gone.name, "short-lived");
    assert_eq!(gone.metrics, None);
    assert_eq!(gone.started_at, None);
}

#[tokio::test]
async fn the_agent_lists_all_containers_and_asks_one_shot_stats_of_running_ones() {
    let fake = FakeDocker::start(recorded_routes(), Duration::ZERO);
    collector_for(&fake).collect().await.unwrap();
    let requests = fake.requests();

    let list = requests
        .iter()
        .find(|target| target.contains("/containers/json"))
        .unwrap();
    assert!(list.contains("all=true"), "{list}");
    let stats: Vec<_> = requests.iter().filter(|t| t.contains("/stats")).collect();
    assert_eq!(
        stats.len(),
        3,
        "one stats call per running container: {stats:?}"
    );
    assert!(
        stats
            .iter()
            .all(|t| t.contains("stream=false") && t.contains("one-shot=true"))
    );
}

#[tokio::test]
async fn stats_for_many_containers_are_gathered_concurrently_within_the_bound() {
    let fake = FakeDocker::start(generated_routes(12), Duration::from_millis(40));
    let mut collector = DockerCollector::new(fake.docker_host(), Duration::from_secs(5), 3);
    let reading = collector.collect().await.unwrap();

    assert_eq!(reading.containers.len(), 12);
    let most = fake.max_in_flight();
    // Three containers at a time, each with its inspect and stats call in flight.
    assert!(most > 2, "requests should overlap, saw at most {most}");
    assert!(
        most <= 6,
        "at most 3 containers at once, saw {most} requests"
    );
}

#[tokio::test]
async fn without_a_daemon_there_is_no_reading_until_the_daemon_appears() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let mut collector = DockerCollector::new(
        format!("unix://{}", socket.display()),
        Duration::from_secs(5),
        4,
    );

    assert_eq!(collector.collect().await, None);
    assert_eq!(collector.collect().await, None);

    let _fake = FakeDocker::start_at(dir, socket, recorded_routes(), Duration::ZERO);
    let reading = collector
        .collect()
        .await
        .expect("reachable once it listens");
    assert_eq!(reading.containers.len(), 4);
}

#[tokio::test]
async fn a_snapshot_without_docker_still_carries_the_host_and_omits_containers() {
    let mut collector = Collector::new(
        HostCollector::new(HostPaths::under(&fixture_host(), Path::new("/"))),
        DockerCollector::new("unix:///nonexistent/docker.sock", Duration::from_secs(1), 4),
    );
    let payload = collector.snapshot().await;
    assert_eq!(payload.containers, None);
    assert_eq!(payload.host.metrics.memory_total_mb, Some(7860));
    assert_eq!(payload.host.facts.unwrap().docker_version, None);
}

#[tokio::test]
async fn a_snapshot_with_docker_carries_its_version_and_fits_the_contract() {
    let fake = FakeDocker::start(recorded_routes(), Duration::ZERO);
    let mut collector = Collector::new(
        HostCollector::new(HostPaths::under(&fixture_host(), Path::new("/"))),
        collector_for(&fake),
    );
    let payload = collector.snapshot().await;

    assert_eq!(
        payload.host.facts.unwrap().docker_version.as_deref(),
        Some("26.1.4")
    );
    let app = find(payload.containers.as_deref().unwrap(), APP);
    // Docker's own status text, health note included (the contract takes 255 characters).
    assert_eq!(
        app.status.as_deref(),
        Some("Up About a minute (health: starting)")
    );
    assert_eq!(app.health_status.as_deref(), Some("starting"));
}

fn fixture_host() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host")
}
