//! Fits a payload into the contract's bounds before it is sent, so one over-long name or a
//! host with too many containers never costs the snapshot (the server would drop the container).
//!
//! The bounds are those the server publishes in its OpenAPI document (`nexus-contract`).

use std::sync::atomic::{AtomicBool, Ordering};

use nexus_contract::{ContainerPayload, TelemetryPayload};

/// Keeps a snapshot within the server's default body limit (4 MiB holds 500 containers of
/// ~8 KiB); the server itself takes any number.
pub const MAX_CONTAINERS: usize = 500;

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
    // Docker's status text is sent as Docker prints it (`Up About a minute (health: starting)`);
    // ports and labels have no bound of their own, the server's body limit is the guard.
    truncate_option(&mut container.status, 255);
    truncate_option(&mut container.state, 32);
    truncate_option(&mut container.health_status, 16);
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
    fn docker_status_text_is_sent_as_docker_prints_it() {
        let mut payload: TelemetryPayload = serde_json::from_value(serde_json::json!({
            "recorded_at": "2024-05-01T09:00:00Z",
            "host": {"metrics": {}},
            "containers": [{"container_id": "a", "name": "n", "image": "i",
                            "status": "Up About a minute (health: starting)",
                            "ports": vec!["[::]:60000-60063->60000-60063/udp"; 130]}],
        }))
        .unwrap();
        fit_to_contract(&mut payload);
        let container = &payload.container_list()[0];
        assert_eq!(
            container.status.as_deref(),
            Some("Up About a minute (health: starting)")
        );
        assert_eq!(container.ports.as_ref().map(Vec::len), Some(130));
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        let mut value = "ééé".to_owned();
        truncate(&mut value, 2);
        assert_eq!(value, "éé");
    }
}
