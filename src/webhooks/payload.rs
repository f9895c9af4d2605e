//! What a webhook's body says: our JSON, in the shape Standard Webhooks recommends (`type`,
//! `timestamp`, `data`), or one Slack-compatible line. The document publishes both schemas
//! under `x-webhooks` (src/api/openapi/rewrite/webhooks.rs), so integrators generate the receiver's types.

use chrono::{DateTime, Utc};
use poem_openapi::Object;

use crate::domain::alert_rule::Severity;
use crate::store::events::{Event, EventKind};
use crate::store::webhooks::{AlertFacts, FeedEvent, WebhookFormat};

/// The body of a `json` webhook: one event of the feed.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct WebhookEvent {
    /// The event's kind (also the kinds an endpoint subscribes to).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When the event happened (its `at`).
    pub timestamp: DateTime<Utc>,
    pub data: WebhookEventData,
}

/// The event as `GET /api/v1/events` shows it, with the names of its host and container.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct WebhookEventData {
    #[oai(flatten)]
    #[serde(flatten)]
    pub event: Event,
    /// The host's display name.
    #[oai(nullable)]
    pub host_name: Option<String>,
    /// The container's name; null for host events.
    #[oai(nullable)]
    pub container_name: Option<String>,
    /// The alert's rule's name (`alert_*` events); null for other events, or when the alert is
    /// gone (its rule deleted).
    #[oai(nullable)]
    pub rule_name: Option<String>,
    /// The alert's rule's severity (`alert_*` events); null otherwise.
    #[oai(nullable)]
    pub severity: Option<Severity>,
    /// The alert's rule's summary (`alert_*` events; may be empty); null otherwise.
    #[oai(nullable)]
    pub summary: Option<String>,
    /// The value that made the alert fire (a percent, a restart count, an exit code, …), as
    /// `GET /api/v1/alerts/{alert_id}` shows it; null for other events and for rule kinds
    /// without a value.
    #[oai(nullable)]
    pub value: Option<f64>,
}

/// The body of a `slack` webhook: Slack's incoming-webhook message.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct SlackMessage {
    /// One human-readable line about the event.
    pub text: String,
}

/// The body sent for `feed` in `format`.
pub fn render(feed: &FeedEvent, format: WebhookFormat) -> String {
    let body = match format {
        WebhookFormat::Json => serde_json::to_string(&WebhookEvent {
            kind: feed.event.kind,
            timestamp: feed.event.at,
            data: WebhookEventData {
                event: feed.event.clone(),
                host_name: feed.host_name.clone(),
                container_name: feed.container_name.clone(),
                rule_name: feed.alert.as_ref().map(|alert| alert.rule_name.clone()),
                severity: feed.alert.as_ref().map(|alert| alert.severity),
                summary: feed.alert.as_ref().map(|alert| alert.summary.clone()),
                value: feed.alert.as_ref().and_then(|alert| alert.value),
            },
        }),
        WebhookFormat::Slack => serde_json::to_string(&SlackMessage {
            text: slack_line(feed),
        }),
    };
    body.expect("an event serialises")
}

fn slack_line(feed: &FeedEvent) -> String {
    let Event {
        kind,
        host_id,
        container_id,
        from_value,
        to_value,
        exit_code,
        alert_id,
        ..
    } = &feed.event;
    let host = feed
        .host_name
        .clone()
        .unwrap_or_else(|| format!("host {host_id}"));
    let container = feed
        .container_name
        .clone()
        .or_else(|| {
            container_id
                .as_ref()
                .map(|id| id.chars().take(12).collect())
        })
        .map(|name| format!("container {name}"));
    let value = |value: &Option<String>| value.clone().unwrap_or_else(|| "?".into());
    let change = format!("{} → {}", value(from_value), value(to_value));
    let subject = container.clone().unwrap_or_else(|| "host".into());
    let what = match kind {
        EventKind::Online => "host is online".to_owned(),
        EventKind::Offline => "host went offline".to_owned(),
        EventKind::Recovered => "host is back online".to_owned(),
        EventKind::Created => format!("{subject} created ({})", value(to_value)),
        EventKind::Removed => format!("{subject} removed (was {})", value(from_value)),
        EventKind::StateChanged => match exit_code {
            Some(code) => format!("{subject} {change} (exit code {code})"),
            None => format!("{subject} {change}"),
        },
        EventKind::HealthChanged => format!("{subject} health {change}"),
        EventKind::Restarted => format!("{subject} restarted (restart count {change})"),
        EventKind::OomKilled => format!("{subject} was killed by the OOM killer"),
        EventKind::AlertFiring | EventKind::AlertResolved | EventKind::AlertAcknowledged => {
            let state = match kind {
                EventKind::AlertFiring => "FIRING",
                EventKind::AlertResolved => "RESOLVED",
                _ => "ACKNOWLEDGED",
            };
            let alert = alert_id.map_or_else(String::new, |id| format!("alert {id}"));
            match &feed.alert {
                Some(facts) => alert_line(state, facts, container.as_deref(), &alert),
                // The alert is gone (its rule was deleted): what the event itself says.
                None => format!("{state} {subject} ({alert})"),
            }
        }
    };
    format!("[{host}] {what}")
}

/// `FIRING warning: A container that was running has stopped, container db, value 137 (rule
/// "container not running", alert 42)`: the severity and the rule's summary first, as a pager
/// shows them (the host is the line's `[host]`).
fn alert_line(state: &str, facts: &AlertFacts, container: Option<&str>, alert: &str) -> String {
    let AlertFacts {
        rule_name,
        severity,
        summary,
        value,
    } = facts;
    let severity = crate::domain::alert_rule::name_of(severity);
    let summary = if summary.is_empty() {
        rule_name
    } else {
        summary
    };
    let container = container.map_or_else(String::new, |container| format!(", {container}"));
    let value = value.map_or_else(String::new, |value| format!(", value {value}"));
    format!("{state} {severity}: {summary}{container}{value} (rule \"{rule_name}\", {alert})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(kind: EventKind) -> FeedEvent {
        FeedEvent {
            event: Event {
                id: 42,
                kind,
                at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                host_id: 7,
                container_id: Some("0123456789abcdef".into()),
                from_value: Some("running".into()),
                to_value: Some("exited".into()),
                exit_code: Some(137),
                alert_id: None,
            },
            host_name: Some("web-01".into()),
            container_name: Some("shop-db".into()),
            alert: None,
        }
    }

    fn alert_feed(kind: EventKind, container: bool) -> FeedEvent {
        let mut feed = feed(kind);
        feed.event.alert_id = Some(42);
        feed.event.from_value = Some("pending".into());
        feed.event.to_value = Some("firing".into());
        feed.event.exit_code = None;
        if !container {
            feed.event.container_id = None;
            feed.container_name = None;
        }
        feed.alert = Some(AlertFacts {
            rule_name: "container not running".into(),
            severity: Severity::Critical,
            summary: "A container that was running has stopped".into(),
            value: Some(137.0),
        });
        feed
    }

    #[test]
    fn the_json_body_is_type_timestamp_and_the_event_with_its_names() {
        let body: serde_json::Value =
            serde_json::from_str(&render(&feed(EventKind::StateChanged), WebhookFormat::Json))
                .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "state_changed",
                "timestamp": "2023-11-14T22:13:20Z",
                "data": {
                    "id": 42, "kind": "state_changed", "at": "2023-11-14T22:13:20Z",
                    "host_id": 7, "container_id": "0123456789abcdef",
                    "from_value": "running", "to_value": "exited", "exit_code": 137,
                    "alert_id": null, "host_name": "web-01", "container_name": "shop-db",
                    "rule_name": null, "severity": null, "summary": null, "value": null
                }
            })
        );
    }

    #[test]
    fn the_slack_body_is_one_line_naming_host_container_and_change() {
        assert_eq!(
            render(&feed(EventKind::StateChanged), WebhookFormat::Slack),
            r#"{"text":"[web-01] container shop-db running → exited (exit code 137)"}"#
        );
    }

    #[test]
    fn an_alert_events_json_body_carries_its_rule_name_severity_summary_and_value() {
        let body: serde_json::Value = serde_json::from_str(&render(
            &alert_feed(EventKind::AlertFiring, true),
            WebhookFormat::Json,
        ))
        .unwrap();
        let data = &body["data"];
        assert_eq!(data["alert_id"], 42);
        assert_eq!(data["rule_name"], "container not running");
        assert_eq!(data["severity"], "critical");
        assert_eq!(data["summary"], "A container that was running has stopped");
        assert_eq!(data["value"], 137.0);
    }

    #[test]
    fn an_alert_events_slack_line_says_severity_summary_host_container_and_value() {
        assert_eq!(
            slack_line(&alert_feed(EventKind::AlertFiring, true)),
            "[web-01] FIRING critical: A container that was running has stopped, \
             container shop-db, value 137 (rule \"container not running\", alert 42)"
        );
        let mut resolved = alert_feed(EventKind::AlertResolved, false);
        if let Some(facts) = resolved.alert.as_mut() {
            facts.summary = String::new();
            facts.value = None;
        }
        assert_eq!(
            slack_line(&resolved),
            "[web-01] RESOLVED critical: container not running \
             (rule \"container not running\", alert 42)",
            "without a summary the rule's name stands in; without a value none is shown"
        );
        let mut gone = alert_feed(EventKind::AlertAcknowledged, true);
        gone.alert = None;
        assert_eq!(
            slack_line(&gone),
            "[web-01] ACKNOWLEDGED container shop-db (alert 42)"
        );
    }
}
