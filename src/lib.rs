//! nexus-telemetry: ingests host and Docker-container telemetry into TimescaleDB.
//!
//! - [`api`]: the HTTP layer (routes, payloads, auth, problem details, OpenAPI);
//! - [`domain`]: validated types and the rules of the contract, free of I/O;
//! - [`store`]: SQL and transactions against PostgreSQL/TimescaleDB;
//! - [`alerts`]: evaluating the alert rules (one process at a time, by a lease);
//! - [`alertmanager`]: delivery of alerts to Prometheus Alertmanager;
//! - [`background`]: periodic work (liveness, the data's lifecycle, alert evaluation);
//! - [`webhooks`]: delivering events to webhook endpoints through the database's outbox;
//! - [`cli`], [`config`], [`startup`]: the binary's commands and how the app is assembled.

pub mod alertmanager;
pub mod alerts;
pub mod api;
pub mod background;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod startup;
pub mod store;
pub mod webhooks;
