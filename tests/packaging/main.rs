//! Packaging tests: the container images and `deploy/compose.yaml` under podman and
//! podman-compose, and the agent's Debian package in a bootstrapped Debian root.
//!
//! They need root, podman and images that `scripts/test-packaging` prepares (release binaries,
//! both images built, the base and TimescaleDB images imported), so they are `#[ignore]`d in the
//! ordinary suite and run by that script (a CI step of its own).

mod compose_stack;
mod debian_package;
mod support;
