//! `POST /agent/telemetry`, in the order a request meets each step: [`admission`] (the bearer,
//! the token's standing and fingerprint, the per-token [`rate_limit`], a free ingest slot from
//! [`slots`]; refusals recorded by [`auth_failures`]), then the body ([`super::body::telemetry`]),
//! then the [`handler`], which hands the snapshot to the store's group commit.

pub mod admission;
pub mod auth_failures;
pub mod handler;
pub mod rate_limit;
pub mod slots;
