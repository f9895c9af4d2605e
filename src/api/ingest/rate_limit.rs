//! Rate limiting: at most `limit` events per key in any 60-second window (a sliding log). Keyed
//! by token for admitted requests, and by client address for failed authentications.
//!
//! The contract says "the 61st request inside 60 s gets 429"; a token bucket (GCRA, as in
//! `governor`) refills continuously and would admit it, so the window is kept exactly: the
//! times of a token's last `limit` requests.
//!
//! Several server processes: each stored post also lands in its token's log in the database
//! (the ingest statement that stamps the token row keeps it, no extra round trip), and the
//! answering process learns the fleet's log from that statement's result. A process therefore
//! counts every process's posts up to its own last commit for the token; what the others stored
//! since is the overshoot, bounded in docs/SCALING.md#rate-limits. The failed-auth budgets stay
//! per process (the cost they bound, database lookups, is each process's own).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;

const WINDOW: Duration = Duration::from_secs(60);

pub struct RateLimit<K = i64> {
    limit: NonZeroU32,
    recent: Mutex<HashMap<K, Window>>,
}

/// One key's requests in the window: this process's, and (for tokens) the fleet's as the
/// database last told, so a token gets its limit across every server process.
#[derive(Debug, Default)]
struct Window {
    /// Requests this process admitted, oldest first.
    own: VecDeque<Instant>,
    /// Stored posts of every process as of `merged_at`, oldest first.
    fleet: VecDeque<Instant>,
    merged_at: Option<Instant>,
}

impl Window {
    fn forget_expired(&mut self, now: Instant) {
        for times in [&mut self.own, &mut self.fleet] {
            while times
                .front()
                .is_some_and(|&t| now.duration_since(t) >= WINDOW)
            {
                times.pop_front();
            }
        }
    }

    /// The requests that count against the limit, oldest first: the fleet's as last learned
    /// plus this process's since then; or this process's alone when those are more (requests
    /// whose body was refused are in no fleet log).
    fn counted(&self) -> Vec<Instant> {
        let Some(merged_at) = self.merged_at else {
            return self.own.iter().copied().collect();
        };
        let mut times: Vec<Instant> = self.fleet.iter().copied().collect();
        times.extend(self.own.iter().copied().filter(|&t| t > merged_at));
        if times.len() < self.own.len() {
            return self.own.iter().copied().collect();
        }
        times.sort_unstable();
        times
    }

    fn last(&self) -> Option<Instant> {
        self.own.back().copied().max(self.fleet.back().copied())
    }
}

/// The quota left after a request was admitted.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    pub limit: u32,
    pub remaining: u32,
}

impl<K: Hash + Eq> RateLimit<K> {
    pub fn per_minute(limit: NonZeroU32) -> Self {
        Self {
            limit,
            recent: Mutex::default(),
        }
    }

    /// Admits one event of `key` at `now` and counts it, or says how long until one would be.
    pub fn check(&self, key: K, now: Instant) -> Result<Admitted, Error> {
        self.admit(key, now, true)
    }

    /// Whether an event of `key` would be admitted at `now`, without counting one.
    pub fn peek(&self, key: K, now: Instant) -> Result<Admitted, Error> {
        self.admit(key, now, false)
    }

    /// What the database says every server process stored for `key` in the window, as ages at
    /// `now` (newest first or in any order). Later checks count those plus what this process
    /// admits from now on; the overshoot this leaves is in docs/SCALING.md#rate-limits.
    pub fn learn_fleet(&self, key: K, ages: &[Duration], now: Instant) {
        let mut fleet: Vec<Instant> = ages
            .iter()
            .filter(|&&age| age < WINDOW)
            .filter_map(|&age| now.checked_sub(age))
            .collect();
        fleet.sort_unstable();
        let mut recent = self.recent.lock().expect("rate limit state");
        let window = recent.entry(key).or_default();
        window.fleet = fleet.into();
        window.merged_at = Some(now);
    }

    fn admit(&self, key: K, now: Instant, count: bool) -> Result<Admitted, Error> {
        let limit = self.limit.get();
        let mut recent = self.recent.lock().expect("rate limit state");
        let window = recent.entry(key).or_default();
        window.forget_expired(now);
        let counted = window.counted();
        if counted.len() >= limit as usize {
            // The request that must leave the window before one more fits.
            let oldest = counted[counted.len() - limit as usize];
            let wait = WINDOW - now.duration_since(oldest);
            return Err(Error::RateLimited {
                limit,
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        if count {
            window.own.push_back(now);
        }
        Ok(Admitted {
            limit,
            remaining: limit - counted.len() as u32 - u32::from(count),
        })
    }

    /// Forgets keys with no request in the window, so memory follows the active tokens.
    pub fn forget_idle(&self, now: Instant) {
        let mut recent = self.recent.lock().expect("rate limit state");
        recent.retain(|_, window| {
            window
                .last()
                .is_some_and(|t| now.duration_since(t) < WINDOW)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(n: u32) -> RateLimit<i64> {
        RateLimit::per_minute(NonZeroU32::new(n).unwrap())
    }

    #[test]
    fn the_request_after_the_limit_inside_the_window_is_refused_until_the_oldest_expires() {
        let limiter = limit(3);
        let start = Instant::now();
        for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
            let admitted = limiter
                .check(1, start + Duration::from_secs(i as u64 * 20))
                .unwrap();
            assert_eq!(admitted.remaining, remaining);
        }
        // 59.5 s after the first request: still inside its window.
        match limiter.check(1, start + Duration::from_millis(59_500)) {
            Err(Error::RateLimited {
                retry_after_secs: 1,
                limit: 3,
            }) => {}
            other => panic!("expected a 1 s wait, got {other:?}"),
        }
        assert!(
            limiter.check(1, start + WINDOW).is_ok(),
            "the first request left the window"
        );
    }

    #[test]
    fn retry_after_counts_whole_seconds_until_a_slot_frees() {
        let limiter = limit(1);
        let start = Instant::now();
        limiter.check(1, start).unwrap();
        match limiter.check(1, start + Duration::from_millis(100)) {
            Err(Error::RateLimited {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 60),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_have_separate_quotas() {
        let limiter = limit(1);
        let now = Instant::now();
        assert!(limiter.check(1, now).is_ok());
        assert!(limiter.check(1, now).is_err());
        assert!(limiter.check(2, now).is_ok());
    }

    #[test]
    fn peeking_counts_nothing() {
        let limiter = limit(1);
        let now = Instant::now();
        assert!(limiter.peek(1, now).is_ok());
        assert!(limiter.peek(1, now).is_ok());
        limiter.check(1, now).unwrap();
        assert!(limiter.peek(1, now).is_err());
    }

    #[test]
    fn idle_tokens_are_forgotten() {
        let limiter = limit(1);
        let start = Instant::now();
        limiter.check(1, start).unwrap();
        limiter.check(2, start + Duration::from_secs(30)).unwrap();
        limiter.forget_idle(start + WINDOW);
        assert_eq!(limiter.recent.lock().unwrap().len(), 1);
    }

    #[test]
    fn posts_other_processes_stored_count_against_the_limit() {
        let limiter = limit(3);
        let now = Instant::now();
        limiter.check(1, now).unwrap();
        // The commit of that post says the fleet stored three in the window (two elsewhere).
        let ages = [0, 10, 20].map(Duration::from_secs);
        limiter.learn_fleet(1, &ages, now + Duration::from_millis(5));
        match limiter.check(1, now + Duration::from_secs(1)) {
            Err(Error::RateLimited {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 40, "until the post of 20 s ago leaves"),
            other => panic!("expected 429, got {other:?}"),
        }
    }

    #[test]
    fn posts_admitted_after_learning_the_fleet_count_add_to_it() {
        let limiter = limit(3);
        let now = Instant::now();
        limiter.learn_fleet(1, &[Duration::from_secs(5)], now);
        let admitted = limiter.check(1, now + Duration::from_secs(1)).unwrap();
        assert_eq!(admitted.remaining, 1);
        limiter.check(1, now + Duration::from_secs(2)).unwrap();
        assert!(limiter.check(1, now + Duration::from_secs(3)).is_err());
    }
}
