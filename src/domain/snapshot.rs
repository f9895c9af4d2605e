//! A telemetry snapshot that passed every rule of the contract and is ready to store.
//!
//! The schema check has already enforced types and bounds; this adds the rules a schema cannot
//! state: the skew window around the server's clock and the uniqueness of container ids.

use chrono::{DateTime, Duration, Utc};
use foldhash::{HashMap, HashMapExt};
use nexus_contract::{ContainerPayload, TelemetryPayload};

use super::FieldError;

/// How far `recorded_at` may stray from the server's clock.
#[derive(Debug, Clone, Copy)]
pub struct SkewWindow {
    pub past: Duration,
    pub future: Duration,
}

/// A valid snapshot of one host. Exists only if every rule held.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub recorded_at: DateTime<Utc>,
    pub payload: TelemetryPayload,
}

impl SkewWindow {
    /// The error of a `recorded_at` outside the window around `now`, if it is.
    pub fn check(&self, recorded_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<FieldError> {
        let (bound, side) = if recorded_at < now - self.past {
            (self.past, "past")
        } else if recorded_at > now + self.future {
            (self.future, "future")
        } else {
            return None;
        };
        Some(FieldError::new(
            "recorded_at",
            format!("must not be more than {} in the {side}", human(bound)),
        ))
    }
}

impl Snapshot {
    pub fn new(
        payload: TelemetryPayload,
        now: DateTime<Utc>,
        skew: SkewWindow,
    ) -> Result<Self, Vec<FieldError>> {
        let recorded_at = payload.recorded_at.with_timezone(&Utc);
        let ids = payload
            .container_list()
            .iter()
            .map(|container| Some(container.container_id.as_str()));
        let errors = rule_errors(Some(recorded_at), ids, now, skew);
        if errors.is_empty() {
            Ok(Self {
                recorded_at,
                payload,
            })
        } else {
            Err(errors)
        }
    }

    pub fn containers(&self) -> &[ContainerPayload] {
        self.payload.container_list()
    }
}

/// The rules a schema cannot state: `recorded_at` inside the skew window, and no container id
/// twice. `container_ids` has one item per container (`None` where the id is not a string), so
/// they can be checked on a document that also breaks the schema, and one 422 names them all.
pub fn rule_errors<'a>(
    recorded_at: Option<DateTime<Utc>>,
    container_ids: impl Iterator<Item = Option<&'a str>>,
    now: DateTime<Utc>,
    skew: SkewWindow,
) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = recorded_at
        .and_then(|recorded_at| skew.check(recorded_at, now))
        .into_iter()
        .collect();
    let mut first_index = HashMap::new();
    for (index, id) in container_ids.enumerate() {
        let Some(id) = id else { continue };
        if let Some(first) = first_index.insert(id, index) {
            first_index.insert(id, first);
            errors.push(FieldError::new(
                format!("containers.{index}.container_id"),
                format!("duplicates containers.{first}.container_id"),
            ));
        }
    }
    errors
}

fn human(duration: Duration) -> String {
    let seconds = duration.num_seconds();
    match seconds {
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SKEW: SkewWindow = SkewWindow {
        past: Duration::hours(1),
        future: Duration::minutes(5),
    };

    fn payload(recorded_at: DateTime<Utc>, container_ids: &[&str]) -> TelemetryPayload {
        let containers: Vec<_> = container_ids
            .iter()
            .map(|id| json!({"container_id": id, "name": id, "image": "nginx"}))
            .collect();
        serde_json::from_value(json!({
            "recorded_at": recorded_at.to_rfc3339(),
            "host": {"metrics": {}},
            "containers": containers,
        }))
        .unwrap()
    }

    fn fields(result: Result<Snapshot, Vec<FieldError>>) -> Vec<String> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn the_skew_window_edges_are_inclusive() {
        let now = Utc::now();
        assert!(Snapshot::new(payload(now - SKEW.past, &[]), now, SKEW).is_ok());
        assert!(Snapshot::new(payload(now + SKEW.future, &[]), now, SKEW).is_ok());
    }

    #[test]
    fn a_snapshot_outside_the_skew_window_is_refused() {
        let now = Utc::now();
        let second = Duration::seconds(1);
        assert_eq!(
            fields(Snapshot::new(
                payload(now - SKEW.past - second, &[]),
                now,
                SKEW
            )),
            ["recorded_at: must not be more than 1 hour in the past"]
        );
        assert_eq!(
            fields(Snapshot::new(
                payload(now + SKEW.future + second, &[]),
                now,
                SKEW
            )),
            ["recorded_at: must not be more than 5 minutes in the future"]
        );
    }

    #[test]
    fn duplicate_container_ids_name_both_positions() {
        let now = Utc::now();
        assert_eq!(
            fields(Snapshot::new(
                payload(now, &["a", "b", "a", "a"]),
                now,
                SKEW
            )),
            [
                "containers.2.container_id: duplicates containers.0.container_id",
                "containers.3.container_id: duplicates containers.0.container_id",
            ]
        );
    }
}
