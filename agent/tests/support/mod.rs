//! Test doubles and harnesses shared by the integration tests.

pub mod e2e;
pub mod fake_docker;
pub mod fake_server;
pub mod podman;
