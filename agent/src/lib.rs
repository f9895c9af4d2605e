//! `nexus-agent`: reads a Docker host (`/proc`, `statvfs`, the Docker Engine API) and pushes
//! telemetry snapshots to a nexus-telemetry server, buffering them while the server is away.
//!
//! The binary is a thin wrapper around [`startup::run`]; the modules are public so tests and
//! the benchmark can drive each part.

pub mod agent;
pub mod buffer;
pub mod collector;
pub mod config;
pub mod docker;
pub mod host;
pub mod limits;
pub mod proc;
pub mod sender;
pub mod startup;
