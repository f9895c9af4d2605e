//! `--alert-evaluation`: the database time of one alert evaluation cycle. For each
//! fleet size in `--alert-hosts`, a fresh database migrated by the server's own code, seeded
//! with SQL (hosts × `--containers` containers, 20 minutes of 30 s host samples, a few minutes
//! of container samples, and the events a fleet has: every container's creation, some deaths,
//! restarts and unhealthy ones), with the default rules. Then the server's own
//! [`Evaluator`] runs cycles: the first opens the alerts, the next `--alert-cycles` are the
//! steady state whose p50 is the figure. A cycle's time is its transaction's, start to commit,
//! from the client on the same box: the statements' database time plus a few loopback round
//! trips.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nexus_telemetry::alerts::evaluation::{Cycle, CycleReport, Evaluator};
use nexus_telemetry::store::{DbSettings, Store};

use crate::cli::Cli;
use crate::database::{self, ServerUrl};

/// The seed, by share of the fleet: what fires with the default rules.
const SEED: &str = "
INSERT INTO hosts (name, slug, status, last_seen_at, labels)
SELECT 'host ' || i, 'host-' || i,
       CASE WHEN i % 100 = 0 THEN 'offline' ELSE 'online' END,
       now() - CASE WHEN i % 100 = 0 THEN interval '1 hour' ELSE interval '10 seconds' END,
       jsonb_build_object('env', CASE WHEN i % 2 = 0 THEN 'prod' ELSE 'staging' END,
                          'rack', 'r' || (i % 40))
FROM generate_series(1, $1::int) i;

-- Every 50th container exited (after running), every 100th unhealthy, every 200th restarting.
INSERT INTO containers (host_id, container_id, name, image, state, health_status,
                        restart_count, exit_code, oom_killed, first_seen_at, recorded_at)
SELECT h.id, md5(h.id || '/' || c), 'app-' || c, 'ghcr.io/acme/app',
       CASE WHEN (h.id * 20 + c) % 50 = 0 THEN 'exited' ELSE 'running' END,
       CASE WHEN (h.id * 20 + c) % 100 = 7 THEN 'unhealthy' ELSE 'healthy' END,
       CASE WHEN (h.id * 20 + c) % 200 = 3 THEN 4 ELSE 0 END,
       CASE WHEN (h.id * 20 + c) % 50 = 0 THEN 1 END, false,
       now() - interval '1 day', now() - interval '10 minutes'
FROM hosts h, generate_series(1, $2::int) c;

INSERT INTO host_metric_snapshots (host_id, recorded_at, cpu_percent, memory_used_mb,
    memory_total_mb, disk_used_gb, disk_total_gb, network_rx_bytes, network_tx_bytes,
    load_average)
SELECT h.id, now() - make_interval(secs => 30 * s), 10 + (h.id % 50), 2048, 8192,
       CASE WHEN h.id % 100 = 1 THEN 95 ELSE 40 + (h.id % 40) END, 100,
       1000000 + 5000 * (40 - s), 2000000 + 3000 * (40 - s), 0.5
FROM hosts h, generate_series(0, 39) s;

INSERT INTO container_metric_snapshots (container_id, host_id, recorded_at, cpu_percent,
    memory_usage_mb, memory_limit_mb, network_rx_bytes, network_tx_bytes,
    block_read_bytes, block_write_bytes)
SELECT c.id, c.host_id, now() - make_interval(secs => 30 * s), 5, 256, 1024,
       1000 * (10 - s), 2000 * (10 - s), 0, 0
FROM containers c, generate_series(0, 3) s;

INSERT INTO events (at, kind, host_id, container_id, to_value)
SELECT c.first_seen_at, 'created', c.host_id, c.container_id, 'running' FROM containers c;
INSERT INTO events (at, kind, host_id, container_id, from_value, to_value, exit_code)
SELECT now() - interval '5 minutes', 'state_changed', c.host_id, c.container_id, 'running',
       'exited', 1
FROM containers c WHERE c.state = 'exited';
INSERT INTO events (at, kind, host_id, container_id, from_value, to_value)
SELECT now() - make_interval(secs => 60 * r), 'restarted', c.host_id, c.container_id,
       (r - 1)::text, r::text
FROM containers c, generate_series(1, 4) r WHERE c.restart_count = 4;
INSERT INTO events (at, kind, host_id)
SELECT now() - interval '1 hour', 'offline', h.id FROM hosts h WHERE h.status = 'offline';
ANALYZE;
";

struct Point {
    hosts: usize,
    seed: Duration,
    first: CycleReport,
    steady: Vec<Duration>,
    findings: usize,
    firing: i64,
}

pub async fn run(cli: &Cli, database_url: &str) -> Result<()> {
    let server = ServerUrl::parse(database_url)?;
    let mut points = Vec::new();
    for &hosts in &cli.alert_hosts {
        let (name, url) = database::create_fresh(&server).await?;
        eprintln!("bench: alert evaluation over {hosts} hosts in database {name}");
        let point = measure(cli, &url, hosts).await;
        if !cli.keep_database {
            database::drop_database(&server, &name).await?;
        }
        points.push(point?);
    }
    println!("{}\n", crate::machine());
    println!(
        "| hosts | containers | seed s | first cycle ms (alerts opened) | cycle p50 ms | min–max ms | findings | firing |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for point in &points {
        let mut steady = point.steady.clone();
        steady.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {} | {} | {:.1} | {:.1} ({}) | **{:.1}** | {:.1}–{:.1} | {} | {} |",
            point.hosts,
            point.hosts * cli.containers,
            point.seed.as_secs_f64(),
            ms(point.first.duration),
            point.first.transitions,
            ms(steady[steady.len() / 2]),
            ms(steady[0]),
            ms(steady[steady.len() - 1]),
            point.findings,
            point.firing,
        );
    }
    Ok(())
}

async fn measure(cli: &Cli, url: &str, hosts: usize) -> Result<Point> {
    let store = Store::new(&DbSettings {
        url: url.to_owned(),
        direct_url: None,
        pool_size: 2,
        acquire_timeout: Duration::from_secs(30),
    })?;
    store.migrate().await.context("Failed to migrate")?;
    let client = database::connect(url).await?;
    let started = Instant::now();
    let seed = SEED
        .replace("$1::int", &hosts.to_string())
        .replace("$2::int", &cli.containers.to_string());
    client
        .batch_execute(&seed)
        .await
        .map_err(|e| anyhow::anyhow!("Failed to seed: {e:?}"))?;
    let seed = started.elapsed();
    let evaluator = Evaluator::new(store, "bench".into(), Duration::from_secs(60));
    let first = cycle(&evaluator).await?;
    let mut steady = Vec::new();
    let mut last = first.clone();
    for _ in 0..cli.alert_cycles.max(1) {
        last = cycle(&evaluator).await?;
        steady.push(last.duration);
    }
    Ok(Point {
        hosts,
        seed,
        first,
        steady,
        findings: last.findings,
        firing: last.firing,
    })
}

async fn cycle(evaluator: &Evaluator) -> Result<CycleReport> {
    match evaluator.cycle().await.map_err(|e| anyhow::anyhow!(e))? {
        Cycle::Evaluated(report) => Ok(report),
        Cycle::NotHolder => anyhow::bail!("the bench's evaluator does not hold the lease"),
    }
}
