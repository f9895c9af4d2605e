//! Rate limiting: at most `limit` events per key in any 60-second window (a sliding log). Keyed
//! by token for admitted requests, and by client address for failed authentications.
//!
//! The contract says "the 61st request inside 60 s gets 429"; a token bucket (GCRA, as in
//! `governor`) refills continuously and would admit it, so the window is kept exactly: the
//! times of a token's last `limit` requests. State is per server process.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;

const WINDOW: Duration = Duration::from_secs(60);

pub struct RateLimit<K = i64> {
    limit: NonZeroU32,
    recent: Mutex<HashMap<K, VecDeque<Instant>>>,
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

    fn admit(&self, key: K, now: Instant, count: bool) -> Result<Admitted, Error> {
        let limit = self.limit.get();
        let mut recent = self.recent.lock().expect("rate limit state");
        let times = recent.entry(key).or_default();
        while times
            .front()
            .is_some_and(|&t| now.duration_since(t) >= WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= limit as usize {
            let oldest = times[0];
            let wait = WINDOW - now.duration_since(oldest);
            return Err(Error::RateLimited {
                limit,
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        if count {
            times.push_back(now);
        }
        Ok(Admitted {
            limit,
            remaining: limit - times.len() as u32,
        })
    }

    /// Forgets tokens with no request in the window, so memory follows the active tokens.
    pub fn forget_idle(&self, now: Instant) {
        let mut recent = self.recent.lock().expect("rate limit state");
        recent.retain(|_, times| {
            times
                .back()
                .is_some_and(|&t| now.duration_since(t) < WINDOW)
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
}
