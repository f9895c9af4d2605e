//! Resident memory and CPU time per tick of the real `nexus-agent` binary with 50 containers.
//!
//! Not a timed test: it starts a fake Docker Engine API (50 running containers) and a fake
//! telemetry server answering 204, runs the agent at a 1-second interval for `TICKS` ticks,
//! and reads the agent's `/proc/<pid>` figures. Run with
//! `cargo bench -p nexus-agent --bench tick_cost` (release build); with
//! `NEXUS_AGENT_BASELINE_BIN=<another nexus-agent>` both are measured in turns, same run.

#[path = "../tests/support/fake_docker.rs"]
mod fake_docker;
#[path = "../tests/support/fake_server.rs"]
mod fake_server;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONTAINERS: usize = 50;
const WARM_UP_TICKS: usize = 3;
const TICKS: usize = 60;
const PRODUCTION_INTERVAL_SECONDS: f64 = 30.0;
/// Rounds of both builds when a baseline binary is given.
const ROUNDS: usize = 4;

/// What one agent process cost over `TICKS` ticks.
struct Cost {
    rss_kib: u64,
    peak_kib: u64,
    cpu_per_tick: f64,
    body_bytes: usize,
    docker_calls: usize,
}

impl Cost {
    fn print(&self, label: &str) {
        println!(
            "  {label:<10} CPU {:.2} ms/tick ({:.4} % of one core at {PRODUCTION_INTERVAL_SECONDS:.0} s), \
             RSS {:.1} MiB (peak {:.1}), body {} B gzip, {} Docker API calls",
            self.cpu_per_tick * 1000.0,
            self.cpu_per_tick / PRODUCTION_INTERVAL_SECONDS * 100.0,
            self.rss_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0,
            self.body_bytes,
            self.docker_calls
        );
    }
}

/// `NEXUS_AGENT_BASELINE_BIN` (e.g. the agent built from `main`) is measured in the same run,
/// alternating with this build, so the two are compared under the same machine load.
fn main() {
    let this_build = env!("CARGO_BIN_EXE_nexus-agent").to_owned();
    println!("nexus-agent tick cost with {CONTAINERS} containers ({TICKS} ticks measured)");
    let Ok(baseline) = std::env::var("NEXUS_AGENT_BASELINE_BIN") else {
        measure(&this_build).print("this build");
        return;
    };
    // Both run from fresh copies side by side: the same binary measured ~0.5 MiB more RSS
    // from a copy than from cargo's output, so where a binary lies must not differ.
    let copies = tempfile::tempdir().unwrap();
    let copy = |from: &str, name: &str| {
        let to = copies.path().join(name);
        std::fs::copy(from, &to).expect("copy an agent binary");
        to.to_str().unwrap().to_owned()
    };
    let (baseline, this_build) = (
        copy(&baseline, "nexus-agent-baseline"),
        copy(&this_build, "nexus-agent-this-build"),
    );
    let mut baseline_costs = Vec::new();
    let mut costs = Vec::new();
    for round in 1..=ROUNDS {
        println!("round {round}");
        // Who goes first alternates, so neither gains from the order.
        let measure_baseline = |costs: &mut Vec<Cost>| {
            let cost = measure(&baseline);
            cost.print("baseline");
            costs.push(cost);
        };
        let measure_this_build = |costs: &mut Vec<Cost>| {
            let cost = measure(&this_build);
            cost.print("this build");
            costs.push(cost);
        };
        if !round.is_multiple_of(2) {
            measure_baseline(&mut baseline_costs);
            measure_this_build(&mut costs);
        } else {
            measure_this_build(&mut costs);
            measure_baseline(&mut baseline_costs);
        }
    }
    let median = |costs: &[Cost], field: fn(&Cost) -> f64| {
        let mut values: Vec<f64> = costs.iter().map(field).collect();
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        if values.len().is_multiple_of(2) {
            (values[middle - 1] + values[middle]) / 2.0
        } else {
            values[middle]
        }
    };
    let cpu = |cost: &Cost| cost.cpu_per_tick * 1000.0;
    let rss = |cost: &Cost| cost.rss_kib as f64 / 1024.0;
    let (base_cpu, new_cpu) = (median(&baseline_costs, cpu), median(&costs, cpu));
    let (base_rss, new_rss) = (median(&baseline_costs, rss), median(&costs, rss));
    println!(
        "median CPU per tick: baseline {base_cpu:.2} ms, this build {new_cpu:.2} ms (ratio {:.3})",
        new_cpu / base_cpu
    );
    println!(
        "median RSS: baseline {base_rss:.1} MiB, this build {new_rss:.1} MiB (ratio {:.3})",
        new_rss / base_rss
    );
}

/// Runs `binary` at a 1-second interval against a fake engine with `CONTAINERS` running
/// containers and a fake server answering 204, and reads its `/proc/<pid>` figures.
fn measure(binary: &str) -> Cost {
    let docker =
        fake_docker::FakeDocker::start(fake_docker::generated_routes(CONTAINERS), Duration::ZERO);
    let server = fake_server::FakeServer::start(vec![]);
    let mut agent = Command::new(binary)
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
    Cost {
        rss_kib,
        peak_kib,
        cpu_per_tick: (cpu_after - cpu_before) / TICKS as f64,
        body_bytes: last.body.len(),
        docker_calls: docker.requests().len(),
    }
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
