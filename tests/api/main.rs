//! Integration tests: the real HTTP server against a real TimescaleDB, one database per test.
//! `DATABASE_URL` must point at a server with TimescaleDB (`scripts/test` provisions one).

mod admin_hosts;
mod admin_tokens;
mod agent_auth;
mod analytics_doc;
mod cli;
mod cli_admin;
mod clusters;
mod conformance;
mod container_inspect_fields;
mod docker_shapes;
mod faults;
mod fleet;
mod fuzz;
mod fuzz_admin;
mod generated_client;
mod grafana_dashboard;
mod group_commit;
mod helpers;
mod ingest_encoding;
mod ingest_errors;
mod ingest_writes;
mod lifecycle;
mod liveness;
mod openapi;
mod openapi_tools;
mod ops;
mod pgbouncer;
mod read_replica;
mod readings;
mod readme;
mod response_schema;
mod retention;
mod scale_out;
mod secrets_in_logs;
mod token_cache;
