//! `nexus-bench`: load generator and COPY baseline for `POST /agent/telemetry`.
//! Run through `scripts/bench`; see BENCHMARKS.md for what it measures and how.

mod alert_evaluation;
mod cli;
mod compare;
mod copy_baseline;
mod database;
mod http;
mod lifecycle;
mod load;
mod matrix;
mod payload;
mod procfs;
mod receiver;
mod replica;
mod report;
mod rng;
mod scenario;
mod server;
mod stats;
mod streams;
mod sweep;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use nexus_telemetry::store::events::EventKind;
use nexus_telemetry::store::webhooks::WebhookFormat;
use nexus_telemetry::store::{DbSettings, Store};
use nexus_test_support::clusters::StreamingPair;

use cli::Cli;
use database::ServerUrl;
use replica::LagMonitor;
use scenario::{Scenario, Target};
use server::ServerSettings;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if !cli.replica {
        let url = cli
            .database_url
            .clone()
            .context("DATABASE_URL is required")?;
        if cli.alert_evaluation {
            return alert_evaluation::run(&cli, &url).await;
        }
        if cli.sweep {
            return sweep::run(&cli, &url).await;
        }
        if let Some(b) = &cli.compare_server_bin {
            return compare::run(&cli, &url, b).await;
        }
        return bench(&cli, &url, None).await;
    }
    let root = cli.pg_root.clone().context(
        "--replica needs --pg-root or NEXUS_PG_ROOT (eval \"$(scripts/scaleout-tools)\")",
    )?;
    let pair = StreamingPair::start(&root, replica::PRIMARY_SETTINGS).await?;
    eprintln!(
        "bench: primary on 127.0.0.1:{}, streaming standby on 127.0.0.1:{} (in {})",
        pair.primary_port,
        pair.standby_port,
        pair.host_dir().display()
    );
    let primary = pair.primary().database("postgres");
    // An interrupted run still stops and deletes its clusters.
    let result = tokio::select! {
        result = bench(&cli, &primary, Some(&pair)) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    drop(pair);
    eprintln!("bench: stopped and deleted the primary and its standby");
    result
}

/// One run on the server at `database_url`: a fresh database there unless --server-url.
async fn bench(cli: &Cli, database_url: &str, pair: Option<&StreamingPair>) -> Result<()> {
    let server = ServerUrl::parse(database_url)?;
    let fresh = match cli.server_url {
        Some(_) => None,
        None => Some(database::create_fresh(&server).await?),
    };
    let db_url = fresh
        .as_ref()
        .map_or(database_url.to_owned(), |(_, url)| url.clone());
    if let Some((name, _)) = &fresh {
        eprintln!("bench: database {name}");
    }
    let replica = match (pair, &fresh) {
        (Some(pair), Some((name, _))) => Some((
            pair.standby().database(name),
            LagMonitor::start(pair).await?,
        )),
        _ => None,
    };
    let result = run(
        cli,
        &db_url,
        replica
            .as_ref()
            .map(|(url, monitor)| (url.as_str(), monitor)),
    )
    .await;
    if let Some((_, monitor)) = replica {
        let report = monitor.finish().await?;
        if result.is_ok() {
            report.print();
        }
    }
    if let Some((name, _)) = &fresh {
        if cli.keep_database {
            eprintln!("bench: kept database {name}");
        } else if pair.is_none() {
            eprintln!("bench: dropping database {name} (waits for a checkpoint)");
            database::drop_database(&server, name).await?;
        }
    }
    result
}

/// `replica`: the standby's URL for the server's reads, and the lag sampler.
async fn run(cli: &Cli, db_url: &str, replica: Option<(&str, &LagMonitor)>) -> Result<()> {
    let settings = ServerSettings {
        binary: &cli.server_bin,
        database_url: db_url,
        rate_limit_per_minute: cli.rate_limit_per_minute,
        pool_size: cli.pool_size,
        read_database_url: replica.map(|(url, _)| url),
        container_cache_mib: cli.container_cache_mib,
        // Compared with and without alert evaluation, the first scenario's hosts must not go
        // offline (and fire alerts) during the second.
        heartbeat_timeout_seconds: cli.compare_alert_evaluation.then_some(3600),
        alert_evaluation: true,
        delivery: None,
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
        let scenario = single_scenario(cli);
        // The same scenario again with the streams open: its baseline, measured in this run.
        let with_streams = (cli.event_streams > 0).then(|| Scenario {
            label: format!("{}, {} idle event streams", cli.label, cli.event_streams),
            event_streams: cli.event_streams,
            ..scenario.clone()
        });
        // Or first without alert evaluation, then with it (the server's default).
        let without_alerts = cli.compare_alert_evaluation.then(|| Scenario {
            label: format!("{}, no alert evaluation", cli.label),
            alert_evaluation: false,
            ..scenario.clone()
        });
        without_alerts
            .into_iter()
            .chain(std::iter::once(scenario))
            .chain(with_streams)
            .collect()
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
        // The compared scenario with evaluation also delivers (a webhook endpoint for every
        // kind at a receiver here, and the Alertmanager if given), created only now so that
        // the first scenario runs without them.
        let receiver = if cli.compare_alert_evaluation && scenario.alert_evaluation {
            Some(webhook_receiver(db_url).await?)
        } else {
            None
        };
        let delivery = receiver.as_ref().map(|_| server::Delivery {
            alertmanager_url: cli.alertmanager_url.as_deref(),
        });
        let target = Target {
            server_url: cli.server_url.as_deref(),
            server: ServerSettings {
                alert_evaluation: scenario.alert_evaluation,
                delivery,
                ..settings.clone()
            },
            db: &mut db,
            db_url,
            monitor: replica.map(|(_, monitor)| monitor),
        };
        results.push(scenario::run(index + 1, &scenario, target).await?);
        if let Some(receiver) = receiver {
            eprintln!(
                "bench: [{}] the webhook receiver got {} deliveries",
                scenario.label,
                receiver.received()
            );
        }
    }
    report::print(&results, &machine());
    Ok(())
}

/// A receiver in this process and an enabled endpoint delivering to it every kind an operator
/// is paged for: alerts, host liveness and container trouble (not `created`/`removed`, of which
/// a fleet's first posts write one per container).
async fn webhook_receiver(db_url: &str) -> Result<receiver::Receiver> {
    let receiver = receiver::Receiver::start().await?;
    let store = Store::new(&DbSettings {
        url: db_url.to_owned(),
        direct_url: None,
        pool_size: 1,
        acquire_timeout: Duration::from_secs(30),
    })?;
    store
        .create_webhook(&receiver.url, PAGED_KINDS, WebhookFormat::Json, true)
        .await
        .context("Failed to create the bench's webhook endpoint")?;
    Ok(receiver)
}

const PAGED_KINDS: &[EventKind] = &[
    EventKind::Offline,
    EventKind::Recovered,
    EventKind::StateChanged,
    EventKind::HealthChanged,
    EventKind::Restarted,
    EventKind::OomKilled,
    EventKind::AlertFiring,
    EventKind::AlertResolved,
    EventKind::AlertAcknowledged,
];

/// The one scenario the flags describe (without --matrix).
fn single_scenario(cli: &Cli) -> Scenario {
    Scenario {
        label: if cli.compare_alert_evaluation {
            format!("{}, alert evaluation (default rules)", cli.label)
        } else {
            cli.label.clone()
        },
        hosts: cli.hosts,
        containers: cli.containers,
        duration: Duration::from_secs(cli.duration),
        rate: cli.rate,
        concurrency: cli.concurrency.unwrap_or(cli.hosts),
        baseline: cli.rate.is_none() && !cli.no_baseline,
        churn_tokens: cli.churn_tokens,
        event_streams: 0,
        alert_evaluation: true,
    }
}

/// One line on the machine: cores, memory, CPU model.
pub fn machine() -> String {
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
