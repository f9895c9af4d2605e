//! Fits a payload into the contract's bounds before it is sent, so one over-long label or a
//! host with too many containers never gets the whole snapshot refused with 422.
//!
//! The bounds are those the server publishes in its OpenAPI document (`nexus-contract`).

use std::sync::atomic::{AtomicBool, Ordering};

use nexus_contract::{ContainerPayload, TelemetryPayload};

pub const MAX_CONTAINERS: usize = 500;
pub const MAX_PORTS: usize = 128;
pub const MAX_LABELS: usize = 128;

static WARNED_TOO_MANY: AtomicBool = AtomicBool::new(false);

/// Trims every field that exceeds its bound; with more than [`MAX_CONTAINERS`] containers the
/// running ones are kept first.
pub fn fit_to_contract(payload: &mut TelemetryPayload) {
    if let Some(facts) = payload.host.facts.as_mut() {
        truncate_option(&mut facts.os, 80);
        truncate_option(&mut facts.docker_version, 32);
    }
    let Some(containers) = payload.containers.as_mut() else {
        return;
    };
    containers.retain(|container| !container.container_id.is_empty());
    if containers.len() > MAX_CONTAINERS {
        if !WARNED_TOO_MANY.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                count = containers.len(),
                "more containers than the server accepts in one snapshot; reporting {MAX_CONTAINERS}, running ones first"
            );
        }
        containers.sort_by_key(|container| container.state.as_deref() != Some("running"));
        containers.truncate(MAX_CONTAINERS);
    }
    containers.iter_mut().for_each(fit_container);
}

fn fit_container(container: &mut ContainerPayload) {
    truncate(&mut container.container_id, 80);
    truncate(&mut container.name, 255);
    truncate(&mut container.image, 255);
    truncate_option(&mut container.image_tag, 128);
    if let Some(status) = container.status.as_mut() {
        *status = short_status(status);
    }
    truncate_option(&mut container.state, 32);
    truncate_option(&mut container.health_status, 16);
    if let Some(ports) = container.ports.as_mut() {
        ports.truncate(MAX_PORTS);
        ports.iter_mut().for_each(|port| truncate(port, 64));
    }
    if let Some(labels) = container.labels.as_mut() {
        labels.truncate(MAX_LABELS);
        labels.truncate_values(1024);
    }
}

/// Docker's status fits in 32 characters once the health note, which is sent as
/// `health_status` anyway, is dropped: `Up About a minute (health: starting)` → `Up About a minute`.
fn short_status(status: &str) -> String {
    let mut short = status.to_owned();
    if short.chars().count() > 32
        && let Some(open) = short.rfind(" (")
        && short.ends_with(')')
    {
        short.truncate(open);
    }
    truncate(&mut short, 32);
    short
}

fn truncate_option(value: &mut Option<String>, max_chars: usize) {
    if let Some(value) = value.as_mut() {
        truncate(value, max_chars);
    }
}

fn truncate(value: &mut String, max_chars: usize) {
    if let Some((byte_index, _)) = value.char_indices().nth(max_chars) {
        value.truncate(byte_index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_status_loses_its_health_note_first() {
        assert_eq!(
            short_status("Up About a minute (health: starting)"),
            "Up About a minute"
        );
        assert_eq!(
            short_status("Exited (0) 3 hours ago"),
            "Exited (0) 3 hours ago"
        );
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        let mut value = "ééé".to_owned();
        truncate(&mut value, 2);
        assert_eq!(value, "éé");
    }
}
