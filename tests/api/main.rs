//! Integration tests: the real HTTP server against a real TimescaleDB, one database per test.
//! `DATABASE_URL` must point at a server with TimescaleDB (`scripts/test` provisions one).

mod analytics_doc;
mod cli;
mod faults;
mod fuzz;
mod helpers;
mod ingest_encoding;
mod ingest_errors;
mod ingest_writes;
mod liveness;
mod openapi;
mod ops;
mod readme;
mod retention;
