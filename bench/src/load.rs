//! The load: `concurrency` agents (tokio tasks), each with its own keep-alive connection and a
//! round-robin share of the hosts. Every host first posts once (warm-up: its containers get
//! created, as on a real fleet long before any measurement); then, from one common start:
//! - closed loop: each agent posts again as soon as its previous answer is read;
//! - fixed rate R: agent j of N owns the slots t0 + (j + kN)/R and sends at its slot, or at
//!   once when late; latency is measured from the slot, so a slow server is not hidden
//!   (no coordinated omission).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use nexus_contract::TELEMETRY_PATH;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::database::Agent;
use crate::http::Connection;
use crate::payload::HostFeed;
use crate::stats::Observed;

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub server_url: String,
    pub containers: usize,
    pub duration: Duration,
    /// Requests/s over all agents; `None` = closed loop.
    pub rate: Option<f64>,
    pub concurrency: usize,
}

/// What the measured phase saw.
#[derive(Debug)]
pub struct LoadOutcome {
    pub warmup: Observed,
    pub measured: Observed,
    /// From the common start to the last answer.
    pub elapsed: Duration,
}

/// Hooks run at the start and end of the measured phase (CPU counters).
pub trait Probe {
    fn start(&mut self);
    fn stop(&mut self);
}

pub async fn run(spec: &LoadSpec, agents: &[Agent], probe: &mut dyn Probe) -> Result<LoadOutcome> {
    let concurrency = spec.concurrency.clamp(1, agents.len().max(1));
    let mut shares: Vec<Vec<(Agent, HostFeed)>> = (0..concurrency).map(|_| Vec::new()).collect();
    for (i, agent) in agents.iter().enumerate() {
        shares[i % concurrency].push((agent.clone(), HostFeed::new(i, spec.containers)));
    }
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(concurrency);
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    let spec = Arc::new(spec.clone());
    let mut tasks = Vec::with_capacity(concurrency);
    for (j, share) in shares.into_iter().enumerate() {
        let spec = spec.clone();
        let ready = ready_tx.clone();
        let start = start_rx.clone();
        let connection = Connection::new(&spec.server_url)?;
        tasks.push(tokio::spawn(agent(
            j,
            concurrency,
            share,
            connection,
            spec,
            ready,
            start,
        )));
    }
    drop(ready_tx);
    let warming = Instant::now();
    for _ in 0..concurrency {
        ready_rx.recv().await;
    }
    eprintln!(
        "bench: warm-up ({} posts) took {:.1} s; measuring {} s",
        agents.len(),
        warming.elapsed().as_secs_f64(),
        spec.duration.as_secs()
    );
    let t0 = Instant::now() + Duration::from_millis(20);
    tokio::time::sleep_until(t0).await;
    probe.start();
    start_tx.send_replace(Some(t0));
    let mut warmup = Observed::default();
    let mut measured = Observed::default();
    let mut last = t0;
    for task in tasks {
        let (w, m, finished) = task.await??;
        warmup.merge(&w);
        measured.merge(&m);
        last = last.max(finished);
    }
    probe.stop();
    Ok(LoadOutcome {
        warmup,
        measured,
        elapsed: last - t0,
    })
}

async fn agent(
    j: usize,
    agents: usize,
    mut hosts: Vec<(Agent, HostFeed)>,
    mut connection: Connection,
    spec: Arc<LoadSpec>,
    ready: mpsc::Sender<()>,
    mut start: watch::Receiver<Option<Instant>>,
) -> Result<(Observed, Observed, Instant)> {
    let mut warmup = Observed::default();
    for (agent, feed) in &mut hosts {
        let (status, latency, bytes) = post(&mut connection, agent, feed).await;
        warmup.record(status, latency, bytes);
    }
    let _ = ready.send(()).await;
    let t0 = start
        .wait_for(Option::is_some)
        .await
        .map(|t| t.expect("set"))?;
    let deadline = t0 + spec.duration;
    let opened_before = connection.opened;
    let mut measured = Observed::default();
    let mut finished = t0;
    let mut next = 0usize;
    let mut slot = 0u64;
    loop {
        let share = hosts.len();
        let (agent, feed) = &mut hosts[next % share];
        next += 1;
        let scheduled = match spec.rate {
            None => None,
            Some(rate) => {
                let offset = (j as f64 + slot as f64 * agents as f64) / rate;
                slot += 1;
                Some(t0 + Duration::from_secs_f64(offset))
            }
        };
        if scheduled.unwrap_or_else(Instant::now) >= deadline {
            break;
        }
        let body = Bytes::from(feed.next_body());
        let bytes = body.len();
        if let Some(at) = scheduled {
            tokio::time::sleep_until(at).await;
        }
        let sent = scheduled.unwrap_or_else(Instant::now);
        let status = connection
            .post(TELEMETRY_PATH, &agent.token, body)
            .await
            .ok()
            .map(|s| s.as_u16());
        finished = Instant::now();
        measured.record(status, finished - sent, bytes);
    }
    measured.connections_opened = connection.opened - opened_before;
    Ok((warmup, measured, finished))
}

async fn post(
    connection: &mut Connection,
    agent: &Agent,
    feed: &mut HostFeed,
) -> (Option<u16>, Duration, usize) {
    let body = Bytes::from(feed.next_body());
    let bytes = body.len();
    let sent = Instant::now();
    let status = connection
        .post(TELEMETRY_PATH, &agent.token, body)
        .await
        .ok()
        .map(|s| s.as_u16());
    (status, sent.elapsed(), bytes)
}
