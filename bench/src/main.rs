//! `nexus-bench`: load generator and COPY baseline for `POST /agent/telemetry` (issue 6).
//! Run through `scripts/bench`; see BENCHMARKS.md for what it measures and how.

mod cli;
mod copy_baseline;
mod database;
mod http;
mod lifecycle;
mod load;
mod matrix;
mod payload;
mod procfs;
mod report;
mod rng;
mod scenario;
mod server;
mod stats;

use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use cli::Cli;
use database::ServerUrl;
use scenario::{Scenario, Target};
use server::ServerSettings;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let server = ServerUrl::parse(&cli.database_url)?;
    let fresh = match cli.server_url {
        Some(_) => None,
        None => Some(database::create_fresh(&server).await?),
    };
    let db_url = fresh
        .as_ref()
        .map_or(cli.database_url.clone(), |(_, url)| url.clone());
    if let Some((name, _)) = &fresh {
        eprintln!("bench: database {name}");
    }
    let result = run(&cli, &db_url).await;
    if let Some((name, _)) = &fresh {
        if cli.keep_database {
            eprintln!("bench: kept database {name}");
        } else {
            eprintln!("bench: dropping database {name} (waits for a checkpoint)");
            database::drop_database(&server, name).await?;
        }
    }
    result
}

async fn run(cli: &Cli, db_url: &str) -> Result<()> {
    let settings = ServerSettings {
        binary: &cli.server_bin,
        database_url: db_url,
        rate_limit_per_minute: cli.rate_limit_per_minute,
        pool_size: cli.pool_size,
    };
    if cli.lifecycle {
        let server = server::Server::spawn(&settings).await?;
        let db = database::connect(db_url).await?;
        let options = lifecycle::Options {
            hosts: cli.lifecycle_hosts,
            days: cli.lifecycle_days,
            runs: cli.lifecycle_runs.max(1),
        };
        let result = lifecycle::run(&db, &server.url, &options).await;
        server.stop().await?;
        return result;
    }
    if cli.server_url.is_none() {
        // The first start migrates the fresh database; the scenarios' servers then find it ready.
        server::Server::spawn(&settings).await?.stop().await?;
    }
    let mut db = database::connect(db_url).await?;
    let mut results = Vec::new();
    let scenarios: Vec<Scenario> = if cli.matrix {
        matrix::scenarios(cli.duration)
    } else {
        vec![Scenario {
            label: "custom".into(),
            hosts: cli.hosts,
            containers: cli.containers,
            duration: Duration::from_secs(cli.duration),
            rate: cli.rate,
            concurrency: cli.concurrency.unwrap_or(cli.hosts),
            baseline: cli.rate.is_none() && !cli.no_baseline,
        }]
    };
    for (index, scenario) in scenarios.iter().enumerate() {
        let mut scenario = scenario.clone();
        if let Some(fraction) = matrix::rate_from_first(&scenario) {
            let max = results
                .first()
                .map(scenario::ScenarioResult::requests_per_second)
                .unwrap_or(100.0);
            scenario.rate = Some((max * fraction).max(1.0));
        }
        if cli.no_baseline {
            scenario.baseline = false;
        }
        let target = Target {
            server_url: cli.server_url.as_deref(),
            server: settings.clone(),
            db: &mut db,
        };
        results.push(scenario::run(index + 1, &scenario, target).await?);
    }
    report::print(&results, &machine());
    Ok(())
}

/// One line on the machine: cores, memory, CPU model.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = procfs::meminfo_mib("MemTotal").unwrap_or(0);
    format!(
        "Machine: {cores} cores ({model}), {memory} MiB RAM, shared by the server, PostgreSQL + \
         TimescaleDB and this load generator (and whatever else runs on it)."
    )
}
