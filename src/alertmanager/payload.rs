//! The body of `POST /api/v2/alerts`: our alerts in Alertmanager's terms (labels, annotations,
//! `startsAt`, `endsAt`, `generatorURL`), built without I/O so the rules are unit-tested.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::store::alertmanager::AlertToSend;

/// One alert of the body (Alertmanager's `postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// Labels we set; a host label of the same name is left out rather than clobbering ours.
const OUR_LABELS: [&str; 7] = [
    "alertname",
    "severity",
    "host",
    "host_id",
    "container",
    "container_id",
    "rule_id",
];

/// Most alerts in one post: a fleet-wide outage (thousands of hosts offline) is sent in bodies
/// of a few hundred KiB rather than one of megabytes (Prometheus posts 64 at a time).
pub const MAX_ALERTS_PER_POST: usize = 500;

/// The JSON bodies that post `alerts`, [`MAX_ALERTS_PER_POST`] at most each; one empty list
/// when there are none (the post still shows Alertmanager reachable, and its silences are read).
pub fn bodies(alerts: &[PostableAlert]) -> serde_json::Result<Vec<Bytes>> {
    if alerts.is_empty() {
        return Ok(vec![Bytes::from_static(b"[]")]);
    }
    alerts
        .chunks(MAX_ALERTS_PER_POST)
        .map(|chunk| serde_json::to_vec(chunk).map(Bytes::from))
        .collect()
}

/// `{public_url}/api/v1/alerts/{id}`: where the alert is read in our API.
pub fn alert_link(public_url: &str, id: i64) -> String {
    format!("{}/api/v1/alerts/{id}", public_url.trim_end_matches('/'))
}

/// `alert` as Alertmanager should hold it at `now`: a firing alert ends at `firing_until` unless
/// re-sent (Alertmanager resolves it by itself if we stop), a resolved one at its resolution.
pub fn postable(
    alert: &AlertToSend,
    firing_until: DateTime<Utc>,
    public_url: &str,
) -> PostableAlert {
    let mut labels = BTreeMap::new();
    if let Some(host_labels) = alert.host_labels.as_object() {
        // In name order whatever the map keeps, so which of two look-alikes stays is stable.
        let mut host_labels: Vec<_> = host_labels.iter().collect();
        host_labels.sort_by_key(|(name, _)| *name);
        for (name, value) in host_labels {
            let Some(name) = label_name(name) else {
                continue;
            };
            if OUR_LABELS.contains(&name.as_str()) {
                continue;
            }
            let value = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            // Two names that sanitise alike: the first (in name order) stays.
            labels.entry(name).or_insert(value);
        }
    }
    labels.insert("alertname".into(), alert.rule_name.clone());
    labels.insert("severity".into(), alert.severity.clone());
    labels.insert("host".into(), alert.host_name.clone());
    labels.insert("host_id".into(), alert.host_id.to_string());
    labels.insert("rule_id".into(), alert.rule_id.to_string());
    if let Some(container_id) = &alert.container_id {
        labels.insert("container_id".into(), container_id.clone());
        if let Some(name) = &alert.container_name {
            labels.insert("container".into(), name.clone());
        }
    }
    let link = alert_link(public_url, alert.id);
    let mut annotations = BTreeMap::new();
    let summary = if alert.summary.is_empty() {
        &alert.rule_name
    } else {
        &alert.summary
    };
    annotations.insert("summary".into(), summary.clone());
    if let Some(value) = alert.value {
        annotations.insert("value".into(), value.to_string());
    }
    annotations.insert("api_url".into(), link.clone());
    PostableAlert {
        labels,
        annotations,
        starts_at: rfc3339(alert.started_at),
        ends_at: rfc3339(alert.resolved_at.unwrap_or(firing_until)),
        generator_url: link,
    }
}

/// A host label's name as Alertmanager accepts it (`[a-zA-Z_][a-zA-Z0-9_]*`): other characters
/// become `_`, a leading digit gets a `_` before it. `None` for an empty name.
pub fn label_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let mut sanitised: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if sanitised.starts_with(|c: char| c.is_ascii_digit()) {
        sanitised.insert(0, '_');
    }
    Some(sanitised)
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert() -> AlertToSend {
        AlertToSend {
            id: 7,
            rule_id: 3,
            rule_name: "disk almost full".into(),
            severity: "critical".into(),
            summary: "A host's disk is more than 90% full".into(),
            host_id: 11,
            host_name: "web-1".into(),
            host_labels: json!({"env": "prod", "team.name": "ops", "9zone": "a",
                                "severity": "low", "team-name": "other", "": "x", "rack": 4}),
            container_id: None,
            container_name: None,
            value: Some(93.5),
            started_at: "2026-12-07T10:00:00Z".parse().unwrap(),
            resolved_at: None,
        }
    }

    #[test]
    fn host_labels_are_sanitised_and_never_clobber_ours() {
        let posted = postable(&alert(), Utc::now(), "http://nexus:8080/");
        let labels: Vec<(&str, &str)> = posted
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("_9zone", "a"),
                ("alertname", "disk almost full"),
                ("env", "prod"),
                ("host", "web-1"),
                ("host_id", "11"),
                ("rack", "4"),
                ("rule_id", "3"),
                ("severity", "critical"),
                ("team_name", "other"), // "team-name" sorts before "team.name"
            ],
            "a host's `severity` must not replace the rule's, and names must be sanitised"
        );
    }

    #[test]
    fn a_firing_alert_ends_when_its_resends_would_stop_and_a_resolved_one_at_its_resolution() {
        let until: DateTime<Utc> = "2026-12-07T10:04:00Z".parse().unwrap();
        let firing = postable(&alert(), until, "http://nexus:8080");
        assert_eq!(firing.starts_at, "2026-12-07T10:00:00.000Z");
        assert_eq!(firing.ends_at, "2026-12-07T10:04:00.000Z");
        let resolved = AlertToSend {
            resolved_at: Some("2026-12-07T10:01:30Z".parse().unwrap()),
            ..alert()
        };
        assert_eq!(
            postable(&resolved, until, "http://nexus:8080").ends_at,
            "2026-12-07T10:01:30.000Z"
        );
    }

    #[test]
    fn annotations_carry_the_summary_the_value_and_the_api_link() {
        let posted = postable(&alert(), Utc::now(), "http://nexus:8080/");
        assert_eq!(
            posted.annotations["summary"],
            "A host's disk is more than 90% full"
        );
        assert_eq!(posted.annotations["value"], "93.5");
        assert_eq!(
            posted.annotations["api_url"],
            "http://nexus:8080/api/v1/alerts/7"
        );
        assert_eq!(posted.generator_url, "http://nexus:8080/api/v1/alerts/7");
        let container = AlertToSend {
            container_id: Some("abc123".into()),
            container_name: Some("db".into()),
            value: None,
            summary: String::new(),
            ..alert()
        };
        let posted = postable(&container, Utc::now(), "http://nexus:8080");
        assert_eq!(posted.labels["container"], "db");
        assert_eq!(posted.labels["container_id"], "abc123");
        assert_eq!(
            posted.annotations["summary"], "disk almost full",
            "the rule's name stands in"
        );
        assert!(!posted.annotations.contains_key("value"));
    }

    #[test]
    fn a_round_is_posted_in_bodies_of_at_most_500_alerts() {
        let one = postable(&alert(), Utc::now(), "http://nexus:8080");
        let many = vec![one; 2 * MAX_ALERTS_PER_POST + 1];
        let sizes: Vec<usize> = bodies(&many)
            .unwrap()
            .iter()
            .map(|body| {
                serde_json::from_slice::<Vec<serde_json::Value>>(body)
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, [MAX_ALERTS_PER_POST, MAX_ALERTS_PER_POST, 1]);
        assert_eq!(
            bodies(&[]).unwrap(),
            [Bytes::from_static(b"[]")],
            "nothing to send is one empty list"
        );
    }
}
