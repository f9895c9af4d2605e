//! Per-token rate limiting (GCRA via `governor`): a burst of `per_minute` requests, refilled at
//! `per_minute` per minute. State is per server process.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::error::Error;

type Limiter =
    RateLimiter<i64, DefaultKeyedStateStore<i64>, DefaultClock, StateInformationMiddleware>;

pub struct RateLimit {
    limiter: Limiter,
    per_minute: NonZeroU32,
}

/// The quota left after a request was admitted.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    pub limit: u32,
    pub remaining: u32,
}

impl RateLimit {
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        let limiter = RateLimiter::keyed(Quota::per_minute(per_minute))
            .with_middleware::<StateInformationMiddleware>();
        Self {
            limiter,
            per_minute,
        }
    }

    /// Admits one request of token `key`, or says how long to wait.
    pub fn check(&self, key: i64) -> Result<Admitted, Error> {
        let limit = self.per_minute.get();
        match self.limiter.check_key(&key) {
            Ok(state) => Ok(Admitted {
                limit,
                remaining: state.remaining_burst_capacity(),
            }),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(Error::RateLimited {
                    limit,
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                })
            }
        }
    }

    /// Forgets tokens whose quota is full again, so memory stays bounded by active tokens.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}
