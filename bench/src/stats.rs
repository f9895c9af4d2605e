//! What agents observe: a latency histogram (µs), answers by status, transport errors.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;

/// Latency from which a request counts as slow: the p99 target the report checks.
pub const SLOW: Duration = Duration::from_millis(50);

/// Latencies from 1 µs to 2 min at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

#[derive(Debug, Clone)]
pub struct Observed {
    pub latency_us: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    pub body_bytes: u64,
    pub connections_opened: u64,
    /// When (wall clock) each request slower than [`SLOW`] got its answer, to match against
    /// the database's log (autovacuum, checkpoints).
    pub slow_answers: Vec<DateTime<Utc>>,
}

impl Default for Observed {
    fn default() -> Self {
        Self {
            latency_us: histogram(),
            statuses: BTreeMap::new(),
            transport_errors: 0,
            body_bytes: 0,
            connections_opened: 0,
            slow_answers: Vec::new(),
        }
    }
}

impl Observed {
    pub fn record(&mut self, status: Option<u16>, latency: Duration, body_bytes: usize) {
        match status {
            Some(status) => *self.statuses.entry(status).or_default() += 1,
            None => self.transport_errors += 1,
        }
        self.body_bytes += body_bytes as u64;
        if latency >= SLOW {
            self.slow_answers.push(Utc::now());
        }
        let us = (latency.as_micros() as u64).clamp(1, 120_000_000);
        self.latency_us.record(us).expect("clamped into bounds");
    }

    pub fn merge(&mut self, other: &Observed) {
        self.latency_us.add(&other.latency_us).expect("same bounds");
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.body_bytes += other.body_bytes;
        self.connections_opened += other.connections_opened;
        self.slow_answers.extend_from_slice(&other.slow_answers);
    }

    /// "N answers took 50 ms or more, HH:MM:SS.mmm–HH:MM:SS.mmm UTC" with the busiest second.
    pub fn slow_text(&self) -> Option<String> {
        let first = self.slow_answers.iter().min()?;
        let last = self.slow_answers.iter().max()?;
        let mut per_second = BTreeMap::<i64, u64>::new();
        for at in &self.slow_answers {
            *per_second.entry(at.timestamp()).or_default() += 1;
        }
        let (busiest, count) = per_second.iter().max_by_key(|(_, n)| **n)?;
        let busiest = DateTime::from_timestamp(*busiest, 0)?;
        Some(format!(
            "{} answers took {} ms or more, {}–{} UTC ({} of them in the second from {})",
            self.slow_answers.len(),
            SLOW.as_millis(),
            first.format("%H:%M:%S%.3f"),
            last.format("%H:%M:%S%.3f"),
            count,
            busiest.format("%H:%M:%S"),
        ))
    }

    /// Answers of any kind plus transport failures.
    pub fn requests(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }

    /// 204 answers: snapshots stored.
    pub fn stored(&self) -> u64 {
        self.statuses.get(&204).copied().unwrap_or(0)
    }

    /// Everything but 204 and 429, as `status×count` (`io` for transport errors).
    pub fn errors_text(&self) -> String {
        let mut parts: Vec<String> = self
            .statuses
            .iter()
            .filter(|(s, _)| **s != 204)
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        if self.transport_errors > 0 {
            parts.push(format!("io×{}", self.transport_errors));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" ")
        }
    }

    /// Errors other than deliberate 429s.
    pub fn unexpected_errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s != 204 && **s != 429)
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.transport_errors
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_the_slow_latency_on_are_timed_and_counted() {
        let mut observed = Observed::default();
        assert_eq!(observed.slow_text(), None);
        for ms in [10, 49, 50, 80] {
            observed.record(Some(204), Duration::from_millis(ms), 100);
        }
        let mut other = Observed::default();
        other.record(Some(204), Duration::from_millis(120), 100);
        observed.merge(&other);
        assert_eq!(observed.slow_answers.len(), 3);
        let text = observed.slow_text().expect("slow answers");
        assert!(text.starts_with("3 answers took 50 ms or more"), "{text}");
    }
}
