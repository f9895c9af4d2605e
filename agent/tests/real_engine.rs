//! The agent against a real container engine: podman's Docker-compatible API (set up by
//! `scripts/podman-setup`), containers that exit, restart and run out of memory, and the
//! snapshot `nexus-agent --once --print` takes of them.

mod support;

use std::process::{Command, Stdio};

use nexus_contract::{ContainerPayload, TelemetryPayload};
use support::podman::{ApiService, Container, Podman};

/// The snapshot the agent binary prints for the engine behind `api`. podman 4.3 fails a
/// container list now and then while another container is being removed (other tests remove
/// theirs); the agent then sends no containers, so the snapshot is taken again, at most thrice.
fn snapshot_of(api: &ApiService) -> TelemetryPayload {
    for _ in 0..3 {
        let output = Command::new(env!("CARGO_BIN_EXE_nexus-agent"))
            .args(["--once", "--print"])
            .env_clear()
            .env("DOCKER_HOST", api.docker_host())
            .env("NEXUS_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run nexus-agent");
        assert!(
            output.status.success(),
            "nexus-agent --once --print failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let snapshot: TelemetryPayload =
            serde_json::from_slice(&output.stdout).expect("the printed snapshot is a payload");
        if snapshot.containers.is_some() {
            return snapshot;
        }
        eprintln!(
            "no containers in the snapshot: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    panic!("the agent never read the engine's containers");
}

fn reported<'a>(snapshot: &'a TelemetryPayload, container: &Container) -> &'a ContainerPayload {
    snapshot
        .container_list()
        .iter()
        .find(|reported| reported.container_id == container.id)
        .unwrap_or_else(|| {
            let reported: Vec<_> = snapshot
                .container_list()
                .iter()
                .map(|reported| &reported.name)
                .collect();
            panic!(
                "{} is missing from the snapshot: {reported:?}",
                container.name
            )
        })
}

/// What the engine's inspect answer (as Docker clients read it) says of `container`.
fn engine_inspect(api: &ApiService, container: &Container) -> serde_json::Value {
    api.get_json(&format!("/containers/{}/json", container.id))
}

#[test]
fn an_exited_container_carries_its_exit_code_and_a_running_one_carries_none() {
    let podman = Podman::ready();
    let exited = podman.start(&[], "exit 42");
    let running = podman.start(&[], "sleep 600");
    exited.wait_for("{{.State.Status}}", "exited");
    running.wait_for("{{.State.Status}}", "running");
    let api = podman.serve_api();

    let snapshot = snapshot_of(&api);

    let exited_report = reported(&snapshot, &exited);
    assert_eq!(exited_report.state.as_deref(), Some("exited"));
    assert_eq!(exited_report.exit_code, Some(42));
    assert_eq!(exited_report.restart_count, Some(0), "never restarted");
    assert_eq!(exited_report.oom_killed, Some(false));
    let engine = engine_inspect(&api, &exited);
    assert_eq!(engine["State"]["ExitCode"], 42, "the engine agrees");

    let running_report = reported(&snapshot, &running);
    assert_eq!(running_report.state.as_deref(), Some("running"));
    assert_eq!(
        running_report.exit_code,
        None,
        "no exit code while running (the engine says {})",
        engine_inspect(&api, &running)["State"]["ExitCode"]
    );
    assert_eq!(running_report.restart_count, Some(0));
    assert_eq!(running_report.oom_killed, Some(false));
}

#[test]
fn a_container_restarted_by_its_policy_carries_the_engine_s_restart_count() {
    let podman = Podman::ready();
    let crashing = podman.start(&["--restart", "on-failure:3"], "exit 7");
    crashing.wait_for("{{.RestartCount}}", "3");
    crashing.wait_for("{{.State.Status}}", "exited");
    let api = podman.serve_api();

    let snapshot = snapshot_of(&api);

    let report = reported(&snapshot, &crashing);
    assert_eq!(
        report.restart_count,
        Some(3),
        "three restarts, then it gave up"
    );
    assert_eq!(report.exit_code, Some(7), "the last run's exit code");
    assert_eq!(report.state.as_deref(), Some("exited"));
    let engine = engine_inspect(&api, &crashing);
    assert_eq!(engine["RestartCount"], 3, "the engine agrees");
}

#[test]
fn a_container_killed_for_memory_is_reported_oom_killed_with_exit_code_137() {
    let podman = Podman::ready();
    let hungry = podman.start(
        &["--memory", "64m", "--memory-swap", "64m"],
        "dd if=/dev/zero of=/dev/null bs=200M count=1",
    );
    hungry.wait_for("{{.State.Status}}", "exited");
    let api = podman.serve_api();

    let snapshot = snapshot_of(&api);

    let report = reported(&snapshot, &hungry);
    assert_eq!(report.oom_killed, Some(true));
    assert_eq!(report.exit_code, Some(137), "killed by SIGKILL");
    let engine = engine_inspect(&api, &hungry);
    assert_eq!(engine["State"]["OOMKilled"], true, "the engine agrees");
    assert_eq!(engine["State"]["ExitCode"], 137);
}
