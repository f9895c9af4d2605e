//! Resident memory and CPU time per tick of the real `nexus-agent` binary with 50 containers.
//!
//! Not a timed test: it starts a fake Docker Engine API (50 running containers) and a fake
//! telemetry server answering 204, runs the agent at a 1-second interval for `TICKS` ticks,
//! and reads the agent's `/proc/<pid>` figures. Run with
//! `cargo bench -p nexus-agent --bench tick_cost` (release build).

#[path = "../tests/support/fake_docker.rs"]
mod fake_docker;
#[path = "../tests/support/fake_server.rs"]
mod fake_server;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONTAINERS: usize = 50;
const WARM_UP_TICKS: usize = 3;
const TICKS: usize = 20;
const PRODUCTION_INTERVAL_SECONDS: f64 = 30.0;

fn main() {
    let docker =
        fake_docker::FakeDocker::start(fake_docker::generated_routes(CONTAINERS), Duration::ZERO);
    let server = fake_server::FakeServer::start(vec![]);
    let mut agent = Command::new(env!("CARGO_BIN_EXE_nexus-agent"))
        .env_clear()
        .env("NEXUS_URL", server.url())
        .env("NEXUS_AGENT_TOKEN", "nxa_bench")
        .env("NEXUS_AGENT_INTERVAL_SECONDS", "1")
        .env("DOCKER_HOST", docker.docker_host())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nexus-agent");
    let pid = agent.id();

    wait_for_posts(&server, WARM_UP_TICKS);
    let cpu_before = cpu_seconds(pid);
    wait_for_posts(&server, WARM_UP_TICKS + TICKS);
    let cpu_after = cpu_seconds(pid);
    let (rss_kib, peak_kib) = memory_kib(pid);
    let _ = agent.kill();
    let _ = agent.wait();

    let received = server.received();
    let last = received.last().expect("a snapshot");
    let body_bytes = last.body.len();
    let per_tick = (cpu_after - cpu_before) / TICKS as f64;
    println!("nexus-agent tick cost with {CONTAINERS} containers ({TICKS} ticks measured)");
    println!(
        "  resident memory:  {:.1} MiB now, {:.1} MiB peak",
        rss_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0
    );
    println!("  CPU per tick:     {:.2} ms", per_tick * 1000.0);
    println!(
        "  CPU at a {PRODUCTION_INTERVAL_SECONDS:.0} s interval: {:.3} % of one core",
        per_tick / PRODUCTION_INTERVAL_SECONDS * 100.0
    );
    println!("  request body:     {body_bytes} bytes (gzip)");
    println!("  Docker API calls: {}", docker.requests().len());
}

fn wait_for_posts(server: &fake_server::FakeServer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.received().len() < count {
        assert!(Instant::now() < deadline, "the agent stopped posting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// User + system CPU time of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from `state` (field 3) here.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    let output = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// (VmRSS, VmHWM) of `pid` in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}
