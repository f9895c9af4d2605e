//! What rejected agent requests are recorded as: a Prometheus counter by reason
//! (`nexus_auth_failures_total{reason}`), one structured log line per client address and reason
//! per minute (address, reason, token id where known; never the bearer), and a per-process
//! summary of the last hour by address and reason, served at `GET /api/v1/auth-failures`.
//!
//! Memory is bounded: at most [`MAX_KEYS`] address–reason pairs are tallied; beyond that,
//! failures are still counted and logged (once a minute per pair) but left out of the summary,
//! and the summary says how many were.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use metrics::counter;

/// Most address–reason pairs tallied for the summary.
const MAX_KEYS: usize = 10_000;

/// Minutes the summary covers.
const WINDOW_MINUTES: i64 = 60;

/// Why an agent request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No usable `Authorization: Bearer` header.
    Missing,
    /// A bearer that matches no token.
    Invalid,
    /// A revoked token.
    Revoked,
    /// A token of an archived host.
    Archived,
    /// The token's own rate limit was used up (429).
    RateLimited,
    /// A fingerprint-bound token used from another address or User-Agent.
    FingerprintMismatch,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Invalid => "invalid",
            Reason::Revoked => "revoked",
            Reason::Archived => "archived",
            Reason::RateLimited => "rate_limited",
            Reason::FingerprintMismatch => "fingerprint_mismatch",
        }
    }
}

/// Failures of one address for one reason: per minute (as minutes since the epoch), newest last.
#[derive(Debug, Default)]
struct Tally {
    minutes: VecDeque<(i64, u64)>,
    last_at: Option<DateTime<Utc>>,
    last_token_id: Option<i64>,
    /// When a line was last logged for this pair: the next one is due a minute later (a
    /// sliding minute, so a retry loop across a clock-minute boundary still logs once).
    logged_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct AuthFailureLog {
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    tallies: HashMap<(IpAddr, Reason), Tally>,
    /// Failures not tallied because [`MAX_KEYS`] pairs were: per minute, newest last.
    untallied: VecDeque<(i64, u64)>,
    /// The minute the full table was last pruned to make room.
    pruned_at: Option<i64>,
}

/// One line of the summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, poem_openapi::Object)]
pub struct FailureSummary {
    pub address: String,
    pub reason: Reason,
    /// Failures in the last hour.
    pub count: u64,
    /// The most recent one.
    pub last_at: DateTime<Utc>,
    /// The token of the most recent one; null when no token was identified (a missing or
    /// unknown bearer).
    #[oai(nullable)]
    pub last_token_id: Option<i64>,
}

impl AuthFailureLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one refused request, and logs it if it is the first of its address and reason
    /// this minute.
    pub fn record(
        &self,
        address: IpAddr,
        reason: Reason,
        token_id: Option<i64>,
        now: DateTime<Utc>,
    ) {
        counter!("nexus_auth_failures_total", "reason" => reason.as_str()).increment(1);
        let minute = now.timestamp().div_euclid(60);
        let first_this_minute = {
            let mut state = self.state.lock().expect("auth failure log");
            let key = (address, reason);
            // Full: make room once a minute at most, so a flood of new addresses does not
            // rescan the table on every request.
            if state.tallies.len() >= MAX_KEYS
                && !state.tallies.contains_key(&key)
                && state.pruned_at != Some(minute)
            {
                state.pruned_at = Some(minute);
                state.forget_before(minute - WINDOW_MINUTES + 1);
            }
            if state.tallies.len() >= MAX_KEYS && !state.tallies.contains_key(&key) {
                // One line a minute for all the untallied pairs together.
                bump(&mut state.untallied, minute)
            } else {
                let tally = state.tallies.entry(key).or_default();
                tally.last_at = Some(now);
                tally.last_token_id = token_id.or(tally.last_token_id);
                bump(&mut tally.minutes, minute);
                if tally.minutes.len() > WINDOW_MINUTES as usize {
                    tally.minutes.pop_front();
                }
                let due = tally
                    .logged_at
                    .is_none_or(|logged| now - logged >= chrono::Duration::minutes(1));
                if due {
                    tally.logged_at = Some(now);
                }
                due
            }
        };
        if first_this_minute {
            tracing::warn!(
                address = %address,
                reason = reason.as_str(),
                token_id,
                "agent request refused (logged once per address and reason per minute)"
            );
        }
    }

    /// Forgets what is older than the summary's hour (run by the housekeeping task).
    pub fn forget_old(&self, now: DateTime<Utc>) {
        let since = now.timestamp().div_euclid(60) - WINDOW_MINUTES + 1;
        self.state
            .lock()
            .expect("auth failure log")
            .forget_before(since);
    }

    /// Failures of the last hour by address and reason, most frequent first, and how many
    /// failures were counted but not tallied by address.
    pub fn summary(&self, now: DateTime<Utc>) -> (Vec<FailureSummary>, u64) {
        let since = now.timestamp().div_euclid(60) - WINDOW_MINUTES + 1;
        let mut state = self.state.lock().expect("auth failure log");
        state.forget_before(since);
        let mut lines: Vec<FailureSummary> = state
            .tallies
            .iter()
            .filter_map(|((address, reason), tally)| {
                Some(FailureSummary {
                    address: address.to_string(),
                    reason: *reason,
                    count: tally.minutes.iter().map(|(_, n)| n).sum(),
                    last_at: tally.last_at?,
                    last_token_id: tally.last_token_id,
                })
            })
            .collect();
        lines.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.address.cmp(&b.address))
                .then_with(|| a.reason.as_str().cmp(b.reason.as_str()))
        });
        let untallied = state.untallied.iter().map(|(_, n)| n).sum();
        (lines, untallied)
    }
}

impl LogState {
    /// Drops the minutes before `since`, and the pairs left with none.
    fn forget_before(&mut self, since: i64) {
        self.tallies.retain(|_, tally| {
            while tally.minutes.front().is_some_and(|(m, _)| *m < since) {
                tally.minutes.pop_front();
            }
            !tally.minutes.is_empty()
        });
        while self.untallied.front().is_some_and(|(m, _)| *m < since) {
            self.untallied.pop_front();
        }
    }
}

/// Adds one to `minute`'s count; whether it is the minute's first.
fn bump(minutes: &mut VecDeque<(i64, u64)>, minute: i64) -> bool {
    match minutes.back_mut() {
        Some((last, count)) if *last == minute => {
            *count += 1;
            false
        }
        _ => {
            minutes.push_back((minute, 1));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn failures_are_summed_per_address_and_reason_over_the_last_hour() {
        let log = AuthFailureLog::new();
        let start = "2026-12-06T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let a = address("192.0.2.1");
        for i in 0..3 {
            log.record(a, Reason::Invalid, None, start + Duration::seconds(i * 20));
        }
        log.record(a, Reason::Revoked, Some(7), start);
        log.record(address("192.0.2.2"), Reason::Invalid, None, start);

        let (lines, untallied) = log.summary(start + Duration::minutes(1));
        let view: Vec<_> = lines
            .iter()
            .map(|l| (l.address.as_str(), l.reason, l.count, l.last_token_id))
            .collect();
        assert_eq!(
            view,
            [
                ("192.0.2.1", Reason::Invalid, 3, None),
                ("192.0.2.1", Reason::Revoked, 1, Some(7)),
                ("192.0.2.2", Reason::Invalid, 1, None),
            ]
        );
        assert_eq!(untallied, 0);
        let (later, _) = log.summary(start + Duration::minutes(61));
        assert!(later.is_empty(), "an hour later nothing is left: {later:?}");
    }

    #[test]
    fn the_summary_stays_bounded_and_says_what_it_left_out() {
        let log = AuthFailureLog::new();
        let now = Utc::now();
        for i in 0..(MAX_KEYS as u32 + 5) {
            log.record(IpAddr::from(i.to_be_bytes()), Reason::Invalid, None, now);
        }
        let (lines, untallied) = log.summary(now);
        assert_eq!(lines.len(), MAX_KEYS);
        assert_eq!(untallied, 5);
    }
}
