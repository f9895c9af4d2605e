//! What agents observe: a latency histogram (µs), answers by status, transport errors.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

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
}

impl Default for Observed {
    fn default() -> Self {
        Self {
            latency_us: histogram(),
            statuses: BTreeMap::new(),
            transport_errors: 0,
            body_bytes: 0,
            connections_opened: 0,
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
