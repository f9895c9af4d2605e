//! The Rust client of the nexus-telemetry API, generated at build time by progenitor from the
//! committed `openapi/openapi.yaml` and nothing else: if the document cannot give a clean
//! client, this crate (or the round trip in `tests/api/generated_client.rs`) fails.

progenitor::generate_api!(
    spec = "../../openapi/openapi.yaml",
    interface = Builder,
    tags = Merged,
);
