//! `--compare-server-bin`: the same scenario against two server binaries, A (--server-bin) and
//! B, in the order A B B A so that a drift of the shared machine over the run weighs on both
//! alike. Each run has a fresh database (same host names, so the same payloads, which are
//! seeded by the host's index) and its own bulk COPY baseline, measured between its slices; the
//! figure compared is each run's ratio to that baseline.

use std::path::Path;

use anyhow::Result;

use crate::cli::Cli;
use crate::database::{self, ServerUrl};
use crate::report;
use crate::scenario::{self, ScenarioResult};
use crate::server::{Server, ServerSettings};

/// Which binary each run spawns, in order.
const ORDER: [Side; 4] = [Side::A, Side::B, Side::B, Side::A];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

pub async fn run(cli: &Cli, database_url: &str, b: &Path) -> Result<()> {
    let server = ServerUrl::parse(database_url)?;
    let mut results = Vec::new();
    for (index, side) in ORDER.into_iter().enumerate() {
        let binary = match side {
            Side::A => cli.server_bin.as_path(),
            Side::B => b,
        };
        let (name, url) = database::create_fresh(&server).await?;
        eprintln!(
            "bench: run {} ({side:?}: {}) in database {name}",
            index + 1,
            binary.display()
        );
        let mut scenario = crate::single_scenario(cli);
        scenario.label = format!("{} {side:?}: {}", index + 1, scenario.label);
        let settings = ServerSettings {
            binary,
            database_url: &url,
            rate_limit_per_minute: cli.rate_limit_per_minute,
            pool_size: cli.pool_size,
            read_database_url: None,
            container_cache_mib: cli.container_cache_mib,
            heartbeat_timeout_seconds: None,
            alert_evaluation: true,
            delivery: None,
        };
        let result = measure(&scenario, settings, &url).await;
        if cli.keep_database {
            eprintln!("bench: kept database {name}");
        } else {
            eprintln!("bench: dropping database {name} (waits for a checkpoint)");
            database::drop_database(&server, &name).await?;
        }
        results.push(result?);
    }
    report::print(&results, &crate::machine());
    summary(cli, b, &results);
    Ok(())
}

async fn measure(
    scenario: &scenario::Scenario,
    settings: ServerSettings<'_>,
    url: &str,
) -> Result<ScenarioResult> {
    // The first start migrates the fresh database; the measured server then finds it ready.
    Server::spawn(&settings).await?.stop().await?;
    // Index 1 for every run: the same host names, hence the same payloads.
    scenario::run_spawned(1, scenario, settings, url).await
}

/// Each run's figures, then B's mean over A's.
fn summary(cli: &Cli, b: &Path, results: &[ScenarioResult]) {
    println!();
    println!(
        "A = {}, B = {}; runs in the order A B B A, each in a fresh database.\n",
        cli.server_bin.display(),
        b.display()
    );
    println!(
        "| run | binary | C | ratio to bulk COPY | ratio by round | posts/s | PostgreSQL CPU ms/post (working backends) | server CPU ms/post |"
    );
    println!("|---|---|---:|---:|---|---:|---:|---:|");
    let figures: Vec<(Side, Figures)> = ORDER
        .into_iter()
        .zip(results)
        .map(|(side, r)| (side, Figures::of(r)))
        .collect();
    for ((side, f), r) in figures.iter().zip(results) {
        let rounds: Vec<String> = r
            .ratios_by_round()
            .iter()
            .map(|q| format!("{q:.3}"))
            .collect();
        println!(
            "| {} | {side:?} | {} | {} | {} | {:.0} | {:.3} | {:.3} |",
            r.scenario.label,
            r.scenario.containers,
            f.ratio.map_or("–".into(), |q| format!("{q:.3}")),
            rounds.join(" / "),
            f.posts_per_second,
            f.postgres_ms,
            f.server_ms,
        );
    }
    let mean = |side: Side, pick: fn(&Figures) -> Option<f64>| {
        let values: Vec<f64> = figures
            .iter()
            .filter(|(s, _)| *s == side)
            .filter_map(|(_, f)| pick(f))
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let b_over_a =
        |pick: fn(&Figures) -> Option<f64>| match (mean(Side::A, pick), mean(Side::B, pick)) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.3}", b / a),
            _ => "–".into(),
        };
    println!(
        "| mean B ÷ mean A | | | {} | | {} | {} | {} |",
        b_over_a(|f| f.ratio),
        b_over_a(|f| Some(f.posts_per_second)),
        b_over_a(|f| Some(f.postgres_ms)),
        b_over_a(|f| Some(f.server_ms)),
    );
}

/// What is compared of one run.
struct Figures {
    ratio: Option<f64>,
    posts_per_second: f64,
    postgres_ms: f64,
    server_ms: f64,
}

impl Figures {
    fn of(r: &ScenarioResult) -> Self {
        let posts = r.load.measured.stored().max(1) as f64;
        Self {
            ratio: r.ratio_to_bulk(),
            posts_per_second: r.posts_per_second(),
            postgres_ms: 1000.0 * r.cpu.backends / posts,
            server_ms: 1000.0 * r.cpu.server / posts,
        }
    }
}
