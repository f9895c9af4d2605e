//! What the server's tests and the bench share, in one place: databases copied from a migrated
//! template ([`template`]) on a server named by URL ([`database`]), throwaway clusters in the
//! Debian root ([`clusters`]), the reading of the server's `/metrics` ([`metrics`]) and
//! generated telemetry bodies ([`bodies`]).
//!
//! Dev-only: the server crate dev-depends on it, the bench depends on it, nothing ships it. It
//! knows PostgreSQL and JSON but not the server, so the server's own unit tests can use it
//! without building the server's types twice.

pub mod bodies;
pub mod clusters;
pub mod database;
pub mod metrics;
pub mod template;
