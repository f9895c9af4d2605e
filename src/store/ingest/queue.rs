//! Group commit: snapshots posted at about the same time share one transaction.
//!
//! A request hands its validated snapshot to the queue and waits for its own outcome. A few
//! writer tasks take turns at the queue: each takes everything waiting (up to a batch limit),
//! writes it with [`Store::ingest`] and answers every request only after the commit. Under light
//! load a batch holds one snapshot and costs what a lone transaction costs; under heavy load the
//! per-statement and per-commit costs of the database are shared by the whole batch. Writers
//! write side by side only when the queue is deep (see `OVERLAP_FROM`); otherwise the next
//! one waits briefly for the busy one and writes one larger batch.
//!
//! Failures stay with the requests they concern: a batch that fails for a reason other than the
//! database being away is written again one snapshot at a time, so one bad snapshot is answered
//! its own error and the others are stored. Two snapshots of one host never share a batch (the
//! later waits for the next, and the host's row lock orders the two transactions), so each
//! host's writes stay in order of arrival.

use std::collections::{HashSet, VecDeque};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use super::{Outcome, Submission};
use crate::error::Error;
use crate::store::Store;

/// Gauge of the snapshots accepted and not yet being written.
pub const QUEUED_METRIC: &str = "nexus_ingest_queued_snapshots";

/// A writer that finds fewer snapshots than this waiting while another writer is busy waits for
/// that one to finish, taking what arrives meanwhile, rather than start a small transaction
/// beside it: at moderate load one transaction at a time, each larger, costs PostgreSQL less per
/// snapshot. Under heavy load the queue is deeper and writers overlap. 24 measured best of 8, 16,
/// 24 and 32 (BENCHMARKS.md, "What was changed, measured before and after").
const OVERLAP_FROM: usize = 24;
/// The longest a writer waits so: about one batch's write at moderate load, so a writer held
/// up (on a row lock, say) delays the others by no more than that.
const OVERLAP_WAIT: Duration = Duration::from_millis(5);

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
        let writers = Arc::new(Writers {
            intake: Mutex::new(Intake {
                jobs: receiver,
                held: VecDeque::new(),
            }),
            busy: Busy::default(),
        });
        for _ in 0..limits.writers.max(1) {
            tokio::spawn(supervise(store.clone(), writers.clone(), limits));
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

/// What the writer tasks share.
struct Writers {
    intake: Mutex<Intake>,
    busy: Busy,
}

/// How many writers are writing a batch, and a signal each time one is done.
#[derive(Default)]
struct Busy {
    writing: AtomicUsize,
    done: Notify,
}

impl Busy {
    /// Counts a writer busy until the guard is dropped, by a panic's unwinding too: a writer
    /// left counted would make the others wait `OVERLAP_WAIT` for it before every batch.
    fn start(&self) -> Writing<'_> {
        self.writing.fetch_add(1, Ordering::SeqCst);
        Writing(self)
    }
}

struct Writing<'a>(&'a Busy);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.writing.fetch_sub(1, Ordering::SeqCst);
        self.0.done.notify_waiters();
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
    /// The next batch: held jobs first, then whatever is queued; waits when both are empty, and
    /// while the batch is small and another writer busy (see [`OVERLAP_FROM`]). `None` once the
    /// queue is gone (the server is shutting down) and nothing is held.
    async fn next_batch(&mut self, limits: BatchLimits, busy: &Busy) -> Option<Batch> {
        let mut batch = Batch::new(limits);
        for job in std::mem::take(&mut self.held) {
            self.held.extend(batch.add(job));
        }
        if batch.jobs.is_empty() {
            let job = self.jobs.recv().await?;
            self.held.extend(batch.add(job)); // an empty batch takes any job
        }
        self.take_queued(&mut batch);
        let mut deadline = pin!(tokio::time::sleep(OVERLAP_WAIT));
        loop {
            let mut done = pin!(busy.done.notified());
            done.as_mut().enable(); // before the check, so a finish in between is not missed
            if busy.writing.load(Ordering::SeqCst) == 0
                || batch.jobs.len() >= OVERLAP_FROM
                || batch.is_full()
            {
                break;
            }
            tokio::select! {
                () = &mut deadline => break,
                () = done => break,
                job = self.jobs.recv() => match job {
                    Some(job) => self.held.extend(batch.add(job)),
                    None => break,
                },
            }
        }
        self.take_queued(&mut batch);
        Some(batch)
    }

    fn take_queued(&mut self, batch: &mut Batch) {
        while !batch.is_full() {
            let Ok(job) = self.jobs.try_recv() else { break };
            self.held.extend(batch.add(job));
        }
    }
}

/// Runs one writer, and another in its place if it panics (a bug: the requests of its batch get
/// a 500 as their answers are dropped), so the server keeps its writers.
async fn supervise(store: Store, writers: Arc<Writers>, limits: BatchLimits) {
    loop {
        let writer = tokio::spawn(write_batches(store.clone(), writers.clone(), limits));
        match writer.await {
            Err(error) if error.is_panic() => {
                tracing::error!("an ingest writer panicked; starting another");
            }
            _ => return,
        }
    }
}

/// One writer: takes a batch, writes it, answers, and again.
async fn write_batches(store: Store, writers: Arc<Writers>, limits: BatchLimits) {
    loop {
        let (batch, _writing) = {
            let mut intake = writers.intake.lock().await;
            let Some(batch) = intake.next_batch(limits, &writers.busy).await else {
                return;
            };
            (batch, writers.busy.start()) // before the next writer looks
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

    /// Two writers, batches large enough not to fill up in these tests.
    const ROOMY: BatchLimits = BatchLimits {
        writers: 2,
        max_snapshots: 100,
        max_container_rows: 100,
    };

    fn intake() -> (mpsc::Sender<Job>, Intake) {
        let (jobs, receiver) = mpsc::channel(2 * OVERLAP_FROM);
        let intake = Intake {
            jobs: receiver,
            held: VecDeque::new(),
        };
        (jobs, intake)
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_other_writer_busy_a_batch_of_one_goes_at_once() {
        let (jobs, mut intake) = intake();
        jobs.send(job(1, 0)).await.unwrap();
        let start = tokio::time::Instant::now();

        let batch = intake.next_batch(ROOMY, &Busy::default()).await.unwrap();

        assert_eq!(hosts(&batch), [1]);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_batch_waits_for_the_busy_writer_and_takes_what_arrives_meanwhile() {
        let (jobs, mut intake) = intake();
        let busy = Busy::default();
        let writing = busy.start();
        jobs.send(job(1, 0)).await.unwrap();

        let (batch, ()) = tokio::join!(intake.next_batch(ROOMY, &busy), async {
            jobs.send(job(2, 0)).await.unwrap();
            tokio::task::yield_now().await;
            jobs.send(job(3, 0)).await.unwrap();
            drop(writing);
        });

        assert_eq!(hosts(&batch.unwrap()), [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_waits_for_a_busy_one_no_longer_than_the_overlap_wait() {
        let (jobs, mut intake) = intake();
        let busy = Busy::default();
        let _writing = busy.start(); // and never done
        jobs.send(job(1, 0)).await.unwrap();
        let start = tokio::time::Instant::now();

        let batch = intake.next_batch(ROOMY, &busy).await.unwrap();

        assert_eq!(hosts(&batch), [1]);
        assert_eq!(start.elapsed(), OVERLAP_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_of_overlap_size_goes_beside_a_busy_writer_at_once() {
        let (jobs, mut intake) = intake();
        let busy = Busy::default();
        let _writing = busy.start();
        for host in 1..=OVERLAP_FROM as i64 {
            jobs.send(job(host, 0)).await.unwrap();
        }
        let start = tokio::time::Instant::now();

        let batch = intake.next_batch(ROOMY, &busy).await.unwrap();

        assert_eq!(batch.jobs.len(), OVERLAP_FROM);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_writer_that_panics_is_no_longer_counted_busy() {
        let busy = Arc::new(Busy::default());
        let writer = tokio::spawn({
            let busy = busy.clone();
            async move {
                let _writing = busy.start();
                panic!("a bug while writing a batch");
            }
        });

        assert!(writer.await.unwrap_err().is_panic());
        assert_eq!(busy.writing.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_empty_batch_takes_a_snapshot_larger_than_its_row_limit() {
        let mut batch = Batch::new(LIMITS);
        assert!(batch.add(job(1, 10)).is_none());
        assert_eq!(hosts(&batch), [1]);
    }
}
