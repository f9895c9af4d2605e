//! A telemetry document that breaks the contract only inside some containers is stored without
//! them: one container described oddly must not cost its host and the other containers their
//! data, tick after tick. What is left out is named (see [`Accepted::dropped`]).
//!
//! A fault anywhere else refuses the whole snapshot with every failing field named: the host's
//! own fields, `recorded_at` (its skew window included), and a container id given twice (Docker
//! never reports one; which of the two is right cannot be known, so it marks a broken agent).

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use nexus_contract::TelemetryPayload;
use serde_json::Value;

use crate::domain::FieldError;
use crate::domain::schema_check::Schema;
use crate::domain::snapshot::{SkewWindow, Snapshot, rule_errors};

/// A snapshot to store, and the containers of the document left out of it.
#[derive(Debug)]
pub struct Accepted {
    pub snapshot: Snapshot,
    pub dropped: Vec<DroppedContainer>,
}

/// A container left out of a snapshot: its position in the posted `containers` array and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedContainer {
    pub index: usize,
    pub errors: Vec<FieldError>,
}

impl Accepted {
    /// A conforming payload: every container is kept.
    pub fn whole(snapshot: Snapshot) -> Self {
        Self {
            snapshot,
            dropped: Vec::new(),
        }
    }

    /// The snapshot in `value`, without the containers that break `schema` (the telemetry
    /// payload's); every failing field when anything outside those containers fails.
    pub fn from_value(
        mut value: Value,
        schema: &Schema,
        now: DateTime<Utc>,
        skew: SkewWindow,
    ) -> Result<Self, Vec<FieldError>> {
        let schema_errors = schema.check(&value);
        let rules = rule_errors(recorded_at_of(&value), container_ids_of(&value), now, skew);
        let mut by_container: BTreeMap<usize, Vec<FieldError>> = BTreeMap::new();
        let mut whole = Vec::new();
        for error in &schema_errors {
            match container_index(&error.field) {
                Some(index) => by_container.entry(index).or_default().push(error.clone()),
                None => whole.push(error.clone()),
            }
        }
        if !whole.is_empty() || !rules.is_empty() {
            // recorded_at first, as the schema orders it; duplicates after the fields.
            let (recorded_at, duplicates): (Vec<_>, Vec<_>) = rules
                .into_iter()
                .partition(|error| error.field == "recorded_at");
            return Err([recorded_at, schema_errors, duplicates].concat());
        }
        if let Some(containers) = value.get_mut("containers").and_then(Value::as_array_mut) {
            for index in by_container.keys().rev() {
                containers.remove(*index);
            }
        }
        let payload: TelemetryPayload = serde_json::from_value(value)
            .map_err(|error| vec![FieldError::new("", error.to_string())])?;
        let snapshot = Snapshot::new(payload, now, skew)?;
        Ok(Self {
            snapshot,
            dropped: by_container
                .into_iter()
                .map(|(index, errors)| DroppedContainer { index, errors })
                .collect(),
        })
    }
}

/// The container a failing field belongs to: `3` for `containers.3` and `containers.3.name`.
fn container_index(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("containers.")?;
    rest.split('.').next()?.parse().ok()
}

/// `recorded_at` when it is a timestamp as the typed parse reads it.
fn recorded_at_of(value: &Value) -> Option<DateTime<Utc>> {
    let text = value.get("recorded_at")?.as_str()?;
    Some(
        text.parse::<DateTime<FixedOffset>>()
            .ok()?
            .with_timezone(&Utc),
    )
}

fn container_ids_of(value: &Value) -> impl Iterator<Item = Option<&str>> {
    value
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|container| container.get("container_id").and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;

    const SKEW: SkewWindow = SkewWindow {
        past: Duration::hours(1),
        future: Duration::minutes(5),
    };

    fn accept(value: Value, now: DateTime<Utc>) -> Result<Accepted, Vec<String>> {
        Accepted::from_value(value, &Schema::of::<TelemetryPayload>(), now, SKEW)
            .map_err(|errors| errors.into_iter().map(|e| e.field).collect())
    }

    fn container(id: &str) -> Value {
        json!({"container_id": id, "name": id, "image": "nginx"})
    }

    #[test]
    fn failing_containers_are_left_out_and_named_by_position() {
        let now = Utc::now();
        let mut bad_name = container("b");
        bad_name["name"] = json!("x".repeat(256));
        let mut bad_metric = container("d");
        bad_metric["metrics"] = json!({"cpu_percent": -1});
        let value = json!({
            "recorded_at": now.to_rfc3339(),
            "host": {"metrics": {}},
            "containers": [container("a"), bad_name, container("c"), bad_metric, 7],
        });

        let accepted = accept(value, now).unwrap();

        let kept: Vec<_> = accepted
            .snapshot
            .containers()
            .iter()
            .map(|c| c.container_id.as_str())
            .collect();
        assert_eq!(kept, ["a", "c"]);
        let dropped: Vec<_> = accepted.dropped.iter().map(|d| d.index).collect();
        assert_eq!(dropped, [1, 3, 4]);
        assert_eq!(accepted.dropped[0].errors[0].field, "containers.1.name");
    }

    #[test]
    fn a_fault_outside_the_containers_refuses_the_snapshot_naming_every_field() {
        let now = Utc::now();
        let mut bad_name = container("b");
        bad_name["name"] = json!("x".repeat(256));
        let value = json!({
            "recorded_at": (now - Duration::hours(2)).to_rfc3339(),
            "host": {"metrics": {"cpu_percent": 101}},
            "containers": [container("a"), bad_name, container("a")],
        });

        assert_eq!(
            accept(value, now).unwrap_err(),
            [
                "recorded_at",
                "host.metrics.cpu_percent",
                "containers.1.name",
                "containers.2.container_id",
            ]
        );
    }

    #[test]
    fn a_duplicate_container_id_refuses_the_snapshot_even_beside_a_dropped_container() {
        let now = Utc::now();
        let mut bad = container("a");
        bad["image"] = json!(5);
        let value = json!({
            "recorded_at": now.to_rfc3339(),
            "host": {"metrics": {}},
            "containers": [container("a"), bad],
        });

        assert_eq!(
            accept(value, now).unwrap_err(),
            ["containers.1.image", "containers.1.container_id"]
        );
    }

    #[test]
    fn only_paths_inside_one_container_name_a_container() {
        assert_eq!(container_index("containers.3.name"), Some(3));
        assert_eq!(container_index("containers.12"), Some(12));
        assert_eq!(container_index("containers"), None);
        assert_eq!(container_index("host.metrics.cpu_percent"), None);
    }
}
