//! `--sweep`: one box's capacity. Each fleet size in a fresh database: every host and token
//! created, the token index settled, every host posting once (its containers created), then
//! the fleet posts open loop at the rate it would at `--sweep-interval` (hosts ÷ 30 per second)
//! for `--duration` seconds. The largest fleet whose rate was kept with p99 under
//! [`P99_GOAL`] is the capacity.

use std::time::Duration;

use anyhow::Result;

use crate::cli::Cli;
use crate::database::{self, ServerUrl};
use crate::report;
use crate::scenario::{self, Scenario, ScenarioResult};
use crate::server::{Server, ServerSettings};

/// The latency a fleet's posts must keep at p99 for the box to carry it.
const P99_GOAL: Duration = Duration::from_millis(100);

/// Share of the target rate a fleet must have stored for the box to have kept up.
const KEPT_UP: f64 = 0.98;

/// Longer than any warm-up of the sweep.
const HEARTBEAT_TIMEOUT_SECONDS: u64 = 3600;

/// Agents at most: enough in flight for any rate this box carries, each on its own connection.
const MAX_AGENTS: usize = 1024;

pub async fn run(cli: &Cli, database_url: &str) -> Result<()> {
    let server = ServerUrl::parse(database_url)?;
    let mut results = Vec::new();
    for (index, &hosts) in cli.sweep_hosts.iter().enumerate() {
        let (name, url) = database::create_fresh(&server).await?;
        eprintln!("bench: sweep of {hosts} hosts in database {name}");
        let result = point(cli, &url, index, hosts).await;
        if !cli.keep_database {
            database::drop_database(&server, &name).await?;
        }
        results.push(result?);
    }
    println!("{}\n", crate::machine());
    print(&results, cli.sweep_interval);
    report::per_post(&results);
    Ok(())
}

async fn point(cli: &Cli, url: &str, index: usize, hosts: usize) -> Result<ScenarioResult> {
    let settings = ServerSettings {
        binary: &cli.server_bin,
        database_url: url,
        rate_limit_per_minute: cli.rate_limit_per_minute,
        pool_size: cli.pool_size,
        read_database_url: None,
        container_cache_mib: cli.container_cache_mib,
        // The warm-up posts each host once as fast as the box takes it, which for a large fleet
        // lasts longer than the default 120 s: the first hosts must not be marked offline (a
        // write to their rows, which empties their cache entries) before their next post.
        heartbeat_timeout_seconds: Some(HEARTBEAT_TIMEOUT_SECONDS),
        alert_evaluation: true,
        delivery: None,
    };
    // The first start migrates the fresh database.
    Server::spawn(&settings).await?.stop().await?;
    let rate = hosts as f64 / cli.sweep_interval;
    let scenario = Scenario {
        label: format!("{hosts} hosts"),
        hosts,
        containers: cli.containers,
        duration: Duration::from_secs(cli.duration),
        rate: Some(rate),
        concurrency: cli
            .concurrency
            .unwrap_or((rate / 4.0) as usize)
            .clamp(64, MAX_AGENTS),
        baseline: false,
        churn_tokens: 0,
        event_streams: 0,
        alert_evaluation: true,
    };
    scenario::run_spawned(index + 1, &scenario, settings, url).await
}

/// Whether the box stored the fleet's rate with p99 within the goal.
fn carried(result: &ScenarioResult) -> bool {
    let target = result.scenario.rate.unwrap_or(0.0);
    result.posts_per_second() >= KEPT_UP * target
        && result.load.measured.percentile_ms(0.99) < P99_GOAL.as_secs_f64() * 1000.0
        && result.load.measured.unexpected_errors() == 0
}

fn print(results: &[ScenarioResult], interval: f64) {
    println!(
        "| hosts | containers | posts/s needed (one per host every {interval} s) | posts/s stored | p50 ms | p99 ms | errors | server peak RSS MiB | kept up |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|---:|---|");
    for r in results {
        let m = &r.load.measured;
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {} | {} |",
            r.scenario.hosts,
            r.scenario.hosts * r.scenario.containers,
            r.scenario.rate.unwrap_or(0.0),
            r.posts_per_second(),
            m.percentile_ms(0.50),
            m.percentile_ms(0.99),
            m.errors_text(),
            r.peak_rss_with_warmup_kib
                .map_or("–".into(), |kib| (kib / 1024).to_string()),
            if carried(r) { "yes" } else { "**no**" },
        );
    }
    let capacity = results
        .iter()
        .filter(|r| carried(r))
        .map(|r| r.scenario.hosts)
        .max();
    match capacity {
        Some(hosts) => println!(
            "\nCapacity measured: {hosts} hosts (the largest fleet carried at p99 < {} ms).",
            P99_GOAL.as_millis()
        ),
        None => println!("\nNo fleet of the sweep was carried."),
    }
}
