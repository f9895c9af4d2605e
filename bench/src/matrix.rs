//! The default matrix `scripts/bench` runs: C=20 at maximum rate (with the COPY baseline), C=20
//! at half that rate (the p99 target), C=0 and C=20 at maximum rate over 12,000 hosts, C=0 while
//! 10,000 tokens are created, C=200 at maximum rate, and 500 keep-alive agents at a low rate
//! (the memory target).
//!
//! Hosts are sized so the production rate limit (60 per token per minute, a sliding window)
//! does not bind: over a ~20 s run (warm-up + measurement) a token may post 60 times, so K hosts
//! carry up to 60·K/20 = 3·K requests/s before any 429: about twice what each scenario reached
//! on this 2-core machine (C=20 ~3,000 req/s, C=0 ~16,500, C=200 ~500).

use std::time::Duration;

use crate::scenario::Scenario;

/// Agents of the maximum-rate runs: more than the server reads at once (`--ingest-in-flight`,
/// 96), so its bound, not the agents, limits what is in flight, as with a large fleet.
const AGENTS: usize = 128;

/// Label of the scenario whose rate is a fraction of the first one's measured maximum.
const HALF: &str = "C=20 half";

pub fn scenarios(duration_secs: u64) -> Vec<Scenario> {
    let duration = Duration::from_secs(duration_secs);
    let closed = |label: &str, hosts: usize, containers: usize| Scenario {
        label: label.into(),
        hosts,
        containers,
        duration,
        rate: None,
        concurrency: AGENTS,
        baseline: true,
        churn_tokens: 0,
        event_streams: 0,
        alert_evaluation: true,
    };
    vec![
        closed("C=20 max", 2000, 20),
        Scenario {
            label: HALF.into(),
            baseline: false,
            ..closed(HALF, 2000, 20)
        },
        closed("C=0 max", 12000, 0),
        closed("C=20 12k hosts", 12000, 20),
        Scenario {
            churn_tokens: 10_000,
            baseline: false,
            ..closed("C=0 max, 10,000 tokens created", 12000, 0)
        },
        closed("C=200 max", 400, 200),
        Scenario {
            label: "500 agents".into(),
            hosts: 500,
            containers: 20,
            duration,
            rate: Some(100.0),
            concurrency: 500,
            baseline: false,
            churn_tokens: 0,
            event_streams: 0,
            alert_evaluation: true,
        },
    ]
}

/// The fraction of the first scenario's measured requests/s this scenario runs at, if any.
pub fn rate_from_first(scenario: &Scenario) -> Option<f64> {
    (scenario.label == HALF).then_some(0.5)
}
