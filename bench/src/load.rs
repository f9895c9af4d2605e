//! The load: `concurrency` agents (tokio tasks), each with its own keep-alive connection and a
//! round-robin share of the hosts. Every host first posts once (warm-up: its containers get
//! created, as on a real fleet long before any measurement); then the fleet runs measured
//! slices, each from one common start (the caller may do other work between slices):
//! - closed loop: each agent posts again as soon as its previous answer is read;
//! - fixed rate R: agent j of N owns the slots t0 + (j + kN)/R and sends at its slot, or at
//!   once when late; latency is measured from the slot, so a slow server is not hidden
//!   (no coordinated omission).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use nexus_contract::TELEMETRY_PATH;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::database::Agent;
use crate::http::Connection;
use crate::payload::HostFeed;
use crate::stats::Observed;

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub server_url: String,
    pub containers: usize,
    /// Requests/s over all agents; `None` = closed loop.
    pub rate: Option<f64>,
    pub concurrency: usize,
}

/// What the warm-up and the measured slices saw.
#[derive(Debug)]
pub struct LoadOutcome {
    pub warmup: Observed,
    pub measured: Observed,
    /// Sum over the slices of common start to last answer.
    pub elapsed: Duration,
    pub slices: Vec<SliceOutcome>,
}

#[derive(Debug, Clone, Copy)]
pub struct SliceOutcome {
    pub stored: u64,
    pub elapsed: Duration,
}

impl SliceOutcome {
    /// Host + container rows stored per second, `containers` per snapshot.
    pub fn rows_per_second(&self, containers: usize) -> f64 {
        (self.stored * (containers as u64 + 1)) as f64 / self.elapsed.as_secs_f64()
    }
}

/// Hooks run at the start and end of each measured slice (CPU counters).
pub trait Probe {
    fn start(&mut self);
    fn stop(&mut self);
}

/// One measured slice, as the agents see it.
#[derive(Debug, Clone, Copy)]
struct Slice {
    t0: Instant,
    duration: Duration,
}

/// The agents, warmed up and waiting for slices.
pub struct Fleet {
    slices: broadcast::Sender<Slice>,
    results: mpsc::Receiver<(Observed, Instant)>,
    tasks: Vec<JoinHandle<Result<Observed>>>,
    outcome: LoadOutcome,
}

impl Fleet {
    /// Spawns the agents and waits until every host has posted once.
    pub async fn warm_up(spec: &LoadSpec, agents: &[Agent]) -> Result<Fleet> {
        let concurrency = spec.concurrency.clamp(1, agents.len().max(1));
        let mut shares: Vec<Vec<(Agent, HostFeed)>> =
            (0..concurrency).map(|_| Vec::new()).collect();
        for (i, agent) in agents.iter().enumerate() {
            shares[i % concurrency].push((agent.clone(), HostFeed::new(i, spec.containers)));
        }
        let (slices, _) = broadcast::channel(1);
        let (ready_tx, mut ready_rx) = mpsc::channel::<()>(concurrency);
        let (results_tx, results) = mpsc::channel(concurrency);
        let spec = Arc::new(spec.clone());
        let mut tasks = Vec::with_capacity(concurrency);
        for (j, share) in shares.into_iter().enumerate() {
            let connection = Connection::new(&spec.server_url)?;
            let agent = AgentTask {
                j,
                agents: concurrency,
                hosts: share,
                connection,
                spec: spec.clone(),
            };
            tasks.push(tokio::spawn(agent.run(
                ready_tx.clone(),
                slices.subscribe(),
                results_tx.clone(),
            )));
        }
        drop(ready_tx);
        let warming = Instant::now();
        while ready_rx.recv().await.is_some() {}
        eprintln!(
            "bench: warm-up ({} posts) took {:.1} s",
            agents.len(),
            warming.elapsed().as_secs_f64(),
        );
        Ok(Fleet {
            slices,
            results,
            tasks,
            outcome: LoadOutcome {
                warmup: Observed::default(),
                measured: Observed::default(),
                elapsed: Duration::ZERO,
                slices: Vec::new(),
            },
        })
    }

    /// Runs one measured slice of `duration`; returns when every agent has its last answer.
    pub async fn slice(&mut self, duration: Duration, probe: &mut dyn Probe) -> SliceOutcome {
        let t0 = Instant::now() + Duration::from_millis(20);
        tokio::time::sleep_until(t0).await;
        probe.start();
        // Every agent is subscribed and waiting: the send cannot fail.
        let _ = self.slices.send(Slice { t0, duration });
        let mut seen = Observed::default();
        let mut last = t0;
        for _ in 0..self.tasks.len() {
            let Some((observed, finished)) = self.results.recv().await else {
                break; // every agent is gone (they stop only with the fleet, or by a panic)
            };
            seen.merge(&observed);
            last = last.max(finished);
        }
        probe.stop();
        let slice = SliceOutcome {
            stored: seen.stored(),
            elapsed: last - t0,
        };
        self.outcome.measured.merge(&seen);
        self.outcome.elapsed += slice.elapsed;
        self.outcome.slices.push(slice);
        slice
    }

    /// Stops the agents; everything seen since the warm-up.
    pub async fn finish(self) -> Result<LoadOutcome> {
        let Fleet {
            slices,
            tasks,
            mut outcome,
            ..
        } = self;
        drop(slices);
        for task in tasks {
            outcome.warmup.merge(&task.await??);
        }
        Ok(outcome)
    }
}

struct AgentTask {
    j: usize,
    agents: usize,
    hosts: Vec<(Agent, HostFeed)>,
    connection: Connection,
    spec: Arc<LoadSpec>,
}

impl AgentTask {
    /// Warms up, then runs each slice it is sent; returns the warm-up's observations.
    async fn run(
        mut self,
        ready: mpsc::Sender<()>,
        mut slices: broadcast::Receiver<Slice>,
        results: mpsc::Sender<(Observed, Instant)>,
    ) -> Result<Observed> {
        let mut warmup = Observed::default();
        for (agent, feed) in &mut self.hosts {
            let body = Bytes::from(feed.next_body());
            let bytes = body.len();
            let sent = Instant::now();
            let status = post(&mut self.connection, agent, body).await;
            warmup.record(status, sent.elapsed(), bytes);
        }
        drop(ready);
        let mut next = 0;
        while let Ok(slice) = slices.recv().await {
            let seen = self.measure(slice, &mut next).await;
            results.send(seen).await.context("the fleet is gone")?;
        }
        Ok(warmup)
    }

    /// One slice: posts until its end, each host in turn from where the last slice stopped.
    async fn measure(&mut self, slice: Slice, next: &mut usize) -> (Observed, Instant) {
        let Slice { t0, duration } = slice;
        let deadline = t0 + duration;
        let opened_before = self.connection.opened;
        let mut measured = Observed::default();
        let mut finished = t0;
        let mut slot = 0u64;
        loop {
            let scheduled = self.spec.rate.map(|rate| {
                let offset = (self.j as f64 + slot as f64 * self.agents as f64) / rate;
                slot += 1;
                t0 + Duration::from_secs_f64(offset)
            });
            if scheduled.unwrap_or_else(Instant::now) >= deadline {
                break;
            }
            let share = self.hosts.len();
            let (agent, feed) = &mut self.hosts[*next % share];
            *next += 1;
            let body = Bytes::from(feed.next_body());
            let bytes = body.len();
            if let Some(at) = scheduled {
                tokio::time::sleep_until(at).await;
            }
            let sent = scheduled.unwrap_or_else(Instant::now);
            let status = post(&mut self.connection, agent, body).await;
            finished = Instant::now();
            measured.record(status, finished - sent, bytes);
        }
        measured.connections_opened = self.connection.opened - opened_before;
        (measured, finished)
    }
}

/// The answer's status, or None when the connection failed.
async fn post(connection: &mut Connection, agent: &Agent, body: Bytes) -> Option<u16> {
    connection
        .post(TELEMETRY_PATH, &agent.token, body)
        .await
        .ok()
        .map(|s| s.as_u16())
}
