//! Group commit: snapshots posted at about the same time share one transaction.
//!
//! A request hands its validated snapshot to the queue and waits for its own outcome. A few
//! writer tasks take turns at the queue: each takes everything waiting (up to a batch limit),
//! writes it with [`Store::ingest`] and answers every request only after the commit. Under light
//! load a batch holds one snapshot and costs what a lone transaction costs; under heavy load the
//! per-statement and per-commit costs of the database are shared by the whole batch.
//!
//! Failures stay with the requests they concern: a batch that fails for a reason other than the
//! database being away is written again one snapshot at a time, so one bad snapshot is answered
//! its own error and the others are stored. Two snapshots of one host never share a batch (the
//! later waits for the next, and the host's row lock orders the two transactions), so each
//! host's writes stay in order of arrival.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::Store;
use super::ingest::{Outcome, Submission};
use crate::error::Error;

/// Gauge of the snapshots accepted and not yet being written.
pub const QUEUED_METRIC: &str = "nexus_ingest_queued_snapshots";

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Writer tasks, each writing one batch at a time on its own pooled connection.
    pub writers: usize,
    /// Most snapshots in one batch.
    pub max_snapshots: usize,
    /// Most container rows in one batch (a batch always takes at least one snapshot).
    pub max_container_rows: usize,
}

/// The entry to the writers; cheap to share. Writers stop when it is dropped.
pub struct IngestQueue {
    jobs: mpsc::Sender<Job>,
}

struct Job {
    submission: Submission,
    answer: oneshot::Sender<Result<Outcome, Error>>,
}

impl IngestQueue {
    /// Starts `limits.writers` writer tasks on the current runtime.
    pub fn spawn(store: Store, limits: BatchLimits) -> Self {
        let (jobs, receiver) = mpsc::channel(limits.max_snapshots * limits.writers.max(1));
        let intake = Arc::new(Mutex::new(Intake {
            jobs: receiver,
            held: VecDeque::new(),
        }));
        for _ in 0..limits.writers.max(1) {
            tokio::spawn(write_batches(store.clone(), intake.clone(), limits));
        }
        Self { jobs }
    }

    /// Stores `submission` with whatever else is waiting; returns once it is committed (or not).
    pub async fn ingest(&self, submission: Submission) -> Result<Outcome, Error> {
        let (answer, outcome) = oneshot::channel();
        let job = Job { submission, answer };
        metrics::gauge!(QUEUED_METRIC).increment(1.0);
        if self.jobs.send(job).await.is_err() {
            metrics::gauge!(QUEUED_METRIC).decrement(1.0);
            return Err(Error::Internal(anyhow::anyhow!(
                "the ingest writers have stopped"
            )));
        }
        outcome.await.map_err(|_| {
            Error::Internal(anyhow::anyhow!("an ingest writer dropped the snapshot"))
        })?
    }
}

/// A batch being formed.
struct Batch {
    limits: BatchLimits,
    jobs: Vec<Job>,
    hosts: HashSet<i64>,
    container_rows: usize,
}

impl Batch {
    fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            jobs: Vec::new(),
            hosts: HashSet::new(),
            container_rows: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.jobs.len() >= self.limits.max_snapshots
            || self.container_rows >= self.limits.max_container_rows
    }

    /// Takes `job`, or hands it back when its host is already in the batch or it would not fit.
    #[must_use]
    fn add(&mut self, job: Job) -> Option<Job> {
        let rows = job.submission.snapshot.containers().len();
        let fits = self.jobs.is_empty()
            || (self.jobs.len() < self.limits.max_snapshots
                && self.container_rows + rows <= self.limits.max_container_rows);
        if !fits || !self.hosts.insert(job.submission.host_id) {
            return Some(job);
        }
        self.container_rows += rows;
        self.jobs.push(job);
        None
    }
}

/// What the writers take batches from, one writer at a time.
struct Intake {
    jobs: mpsc::Receiver<Job>,
    /// Jobs that did not fit a batch (their host was in it already); they go first into the
    /// next batch, whichever writer forms it. Kept here rather than by the writer that set them
    /// aside: that writer could otherwise wait for the intake while another waits in it for a
    /// new job that the held jobs' own agents will not send until they are answered.
    held: VecDeque<Job>,
}

impl Intake {
    /// The next batch: held jobs first, then whatever is queued; waits only when both are empty.
    /// `None` once the queue is gone (the server is shutting down) and nothing is held.
    async fn next_batch(&mut self, limits: BatchLimits) -> Option<Batch> {
        let mut batch = Batch::new(limits);
        for job in std::mem::take(&mut self.held) {
            self.held.extend(batch.add(job));
        }
        if batch.jobs.is_empty() {
            let job = self.jobs.recv().await?;
            self.held.extend(batch.add(job)); // an empty batch takes any job
        }
        while !batch.is_full() {
            let Ok(job) = self.jobs.try_recv() else { break };
            self.held.extend(batch.add(job));
        }
        Some(batch)
    }
}

/// One writer: takes a batch, writes it, answers, and again.
async fn write_batches(store: Store, intake: Arc<Mutex<Intake>>, limits: BatchLimits) {
    loop {
        let Some(batch) = intake.lock().await.next_batch(limits).await else {
            return;
        };
        write(&store, batch.jobs).await;
    }
}

/// Writes one batch and answers each of its requests.
async fn write(store: &Store, jobs: Vec<Job>) {
    metrics::gauge!(QUEUED_METRIC).decrement(jobs.len() as f64);
    metrics::histogram!("nexus_ingest_batch_snapshots").record(jobs.len() as f64);
    let (submissions, answers): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .map(|job| (job.submission, job.answer))
        .unzip();
    match store.ingest(&submissions).await {
        Ok(outcomes) => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(Ok(outcome));
            }
        }
        // The database is away: every request of the batch is affected alike.
        Err(Error::Unavailable(cause)) => {
            let cause = format!("{cause:#}");
            for answer in answers {
                let _ = answer.send(Err(Error::Unavailable(anyhow::anyhow!(cause.clone()))));
            }
        }
        Err(error) if submissions.len() == 1 => {
            let _ = answers
                .into_iter()
                .next()
                .map(|answer| answer.send(Err(error)));
        }
        // Find the snapshot(s) at fault: each alone, answered its own outcome.
        Err(error) => {
            tracing::warn!(
                error = ?error,
                snapshots = submissions.len(),
                "ingest batch failed; writing its snapshots one by one"
            );
            for (submission, answer) in submissions.iter().zip(answers) {
                let outcome = store.ingest(std::slice::from_ref(submission)).await;
                let _ = answer.send(outcome.map(|mut outcomes| outcomes.remove(0)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::{SkewWindow, Snapshot};
    use chrono::Utc;

    const LIMITS: BatchLimits = BatchLimits {
        writers: 1,
        max_snapshots: 3,
        max_container_rows: 4,
    };

    fn job(host_id: i64, containers: usize) -> Job {
        let now = Utc::now();
        let containers: Vec<_> = (0..containers)
            .map(
                |n| serde_json::json!({"container_id": format!("c{n}"), "name": "n", "image": "i"}),
            )
            .collect();
        let payload = serde_json::from_value(serde_json::json!({
            "recorded_at": now.to_rfc3339(),
            "host": {"metrics": {}},
            "containers": containers,
        }))
        .unwrap();
        let skew = SkewWindow {
            past: chrono::Duration::hours(1),
            future: chrono::Duration::hours(1),
        };
        Job {
            submission: Submission {
                host_id,
                token_id: host_id,
                snapshot: Snapshot::new(payload, now, skew).unwrap(),
            },
            answer: oneshot::channel().0,
        }
    }

    fn hosts(batch: &Batch) -> Vec<i64> {
        batch.jobs.iter().map(|j| j.submission.host_id).collect()
    }

    #[test]
    fn a_batch_never_holds_two_snapshots_of_one_host() {
        let mut batch = Batch::new(LIMITS);
        assert!(batch.add(job(1, 0)).is_none());
        let handed_back = batch.add(job(1, 0)).expect("second snapshot of host 1");
        assert_eq!(handed_back.submission.host_id, 1);
        assert!(batch.add(job(2, 0)).is_none());
        assert_eq!(hosts(&batch), [1, 2]);
    }

    #[test]
    fn a_batch_stops_at_its_snapshot_and_row_limits() {
        let mut batch = Batch::new(LIMITS);
        assert!(batch.add(job(1, 2)).is_none());
        assert!(batch.add(job(2, 3)).is_some(), "5 rows exceed 4");
        assert!(batch.add(job(3, 2)).is_none());
        assert!(batch.is_full(), "4 rows reached");

        let mut batch = Batch::new(LIMITS);
        for host in 1..=3 {
            assert!(batch.add(job(host, 0)).is_none());
        }
        assert!(batch.is_full());
        assert!(batch.add(job(4, 0)).is_some(), "3 snapshots at most");
    }

    #[test]
    fn an_empty_batch_takes_a_snapshot_larger_than_its_row_limit() {
        let mut batch = Batch::new(LIMITS);
        assert!(batch.add(job(1, 10)).is_none());
        assert_eq!(hosts(&batch), [1]);
    }
}
