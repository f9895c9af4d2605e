//! A telemetry snapshot that passed every rule of the contract and is ready to store.
//!
//! The schema check has already enforced types and bounds (and NUL-free strings, a leaf rule of
//! every string it visits); this adds, on the `validator` crate, the rules a schema cannot
//! state: `recorded_at` inside the skew window around the server's clock (passed as the
//! validation context, so `now` is an argument) and no container id twice.

use chrono::{DateTime, Duration, Utc};
use foldhash::HashMap;
use nexus_contract::{ContainerPayload, TelemetryPayload};
use validator::{Validate, ValidateArgs, ValidationError, ValidationErrors, ValidationErrorsKind};

use super::FieldError;

/// How far `recorded_at` may stray from the server's clock.
#[derive(Debug, Clone, Copy)]
pub struct SkewWindow {
    pub past: Duration,
    pub future: Duration,
}

/// The server's clock and its skew window: the context the rules are checked in.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub skew: SkewWindow,
}

/// A valid snapshot of one host. Exists only if every rule held.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub recorded_at: DateTime<Utc>,
    pub payload: TelemetryPayload,
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

/// The rules a schema cannot state, as field errors: `recorded_at` first, then each duplicate
/// container id in container order. `container_ids` has one item per container (`None` where
/// the id is not a string), so they can be checked on a document that also breaks the schema,
/// and one 422 names them all.
pub fn rule_errors<'a>(
    recorded_at: Option<DateTime<Utc>>,
    container_ids: impl Iterator<Item = Option<&'a str>>,
    now: DateTime<Utc>,
    skew: SkewWindow,
) -> Vec<FieldError> {
    let facts = RuleFacts {
        recorded_at,
        containers: ContainerFacts::of(container_ids),
    };
    let mut errors = Vec::new();
    if let Err(failed) = facts.validate_with_args(&Clock { now, skew }) {
        field_errors(&failed, "", &mut errors);
    }
    errors
}

/// What the rules look at, taken from a typed payload or from a document that breaks the
/// schema elsewhere (where no typed payload exists). Field names are the document's, so a
/// failure's path is its field's.
#[derive(Debug, Validate)]
#[validate(context = "Clock")]
struct RuleFacts {
    /// `None` where it is not a timestamp (the schema check names that).
    #[validate(custom(function = "inside_skew_window", use_context))]
    recorded_at: Option<DateTime<Utc>>,
    /// One per container, in the document's order.
    #[validate(nested)]
    containers: Vec<ContainerFacts>,
}

/// What the rules look at in one container.
#[derive(Debug, Validate)]
struct ContainerFacts {
    #[validate(custom(function = "first_with_its_id"))]
    container_id: IdPosition,
}

/// Where a container stands among those with its id (serialisable, as validator adds each
/// checked value to its error).
#[derive(Debug, serde::Serialize)]
struct IdPosition {
    /// The container's own position.
    at: usize,
    /// The position of the first container with the same id: its own when none comes before
    /// it, or when its id is not a string (then it is neither a duplicate nor a first).
    first: usize,
}

impl ContainerFacts {
    /// One per id, in order.
    fn of<'a>(ids: impl Iterator<Item = Option<&'a str>>) -> Vec<Self> {
        let mut first_index = HashMap::default();
        ids.enumerate()
            .map(|(at, id)| {
                let first = id.map_or(at, |id| *first_index.entry(id).or_insert(at));
                Self {
                    container_id: IdPosition { at, first },
                }
            })
            .collect()
    }
}

/// The order the document gives its fields, which errors are reported in.
const REPORT_ORDER: [&str; 2] = ["recorded_at", "containers"];

/// `recorded_at` lies within the skew window around the clock's `now`, edges included.
fn inside_skew_window(recorded_at: &DateTime<Utc>, clock: &Clock) -> Result<(), ValidationError> {
    let SkewWindow { past, future } = clock.skew;
    let (bound, side) = if *recorded_at < clock.now - past {
        (past, "past")
    } else if *recorded_at > clock.now + future {
        (future, "future")
    } else {
        return Ok(());
    };
    let message = format!("must not be more than {} in the {side}", human(bound));
    Err(ValidationError::new("skew_window").with_message(message.into()))
}

/// No two containers have the same id (Docker never reports one twice; which of the two is
/// right cannot be known). Each repeat is named by its position, beside the first.
fn first_with_its_id(position: &IdPosition) -> Result<(), ValidationError> {
    if position.at == position.first {
        return Ok(());
    }
    let message = format!("duplicates containers.{}.container_id", position.first);
    Err(ValidationError::new("unique_container_id").with_message(message.into()))
}

/// `errors` as the API reports field errors: each by its path in the document (items of a list
/// by their index), fields in the document's order, items in theirs.
fn field_errors(errors: &ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    let mut fields: Vec<_> = errors.errors().iter().collect();
    fields.sort_by_key(|(name, _)| REPORT_ORDER.iter().position(|known| known == name));
    for (name, kind) in fields {
        let path = match prefix {
            "" => name.to_string(),
            prefix => format!("{prefix}.{name}"),
        };
        match kind {
            ValidationErrorsKind::Field(failed) => out.extend(failed.iter().map(|error| {
                FieldError::new(&path, error.message.as_deref().unwrap_or(&error.code))
            })),
            ValidationErrorsKind::Struct(nested) => field_errors(nested, &path, out),
            ValidationErrorsKind::List(items) => {
                for (index, item) in items {
                    field_errors(item, &format!("{path}.{index}"), out);
                }
            }
        }
    }
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

    fn skew_message(recorded_at: DateTime<Utc>, now: DateTime<Utc>, skew: SkewWindow) -> String {
        inside_skew_window(&recorded_at, &Clock { now, skew })
            .unwrap_err()
            .message
            .unwrap()
            .into_owned()
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
    fn the_skew_window_is_told_in_the_largest_whole_unit() {
        let now = Utc::now();
        let window = |past, future| SkewWindow { past, future };
        let cases = [
            (
                window(Duration::hours(2), SKEW.future),
                -3 * 3600,
                "2 hours in the past",
            ),
            (
                window(Duration::seconds(90), SKEW.future),
                -91,
                "90 seconds in the past",
            ),
            (
                window(SKEW.past, Duration::minutes(1)),
                61,
                "1 minute in the future",
            ),
            (
                window(SKEW.past, Duration::seconds(1)),
                2,
                "1 second in the future",
            ),
        ];
        for (skew, offset, expected) in cases {
            let recorded_at = now + Duration::seconds(offset);
            assert_eq!(
                skew_message(recorded_at, now, skew),
                format!("must not be more than {expected}"),
                "{skew:?}, {offset} s from now"
            );
        }
    }

    #[test]
    fn the_skew_rule_judges_against_the_given_now_not_the_wall_clock() {
        let then = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(
            inside_skew_window(
                &then,
                &Clock {
                    now: then,
                    skew: SKEW
                }
            )
            .is_ok()
        );
        assert!(Snapshot::new(payload(then, &[]), then, SKEW).is_ok());
        assert_eq!(
            fields(Snapshot::new(payload(then, &[]), Utc::now(), SKEW)),
            ["recorded_at: must not be more than 1 hour in the past"]
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

    #[test]
    fn ids_that_are_not_strings_are_neither_duplicates_nor_firsts() {
        let now = Utc::now();
        let ids = [None, None, Some("a"), None];
        assert!(rule_errors(Some(now), ids.into_iter(), now, SKEW).is_empty());
        let ids = [None, Some("b"), None, Some("b")];
        assert_eq!(
            rule_errors(Some(now), ids.into_iter(), now, SKEW),
            [FieldError::new(
                "containers.3.container_id",
                "duplicates containers.1.container_id"
            )]
        );
    }

    #[test]
    fn rule_errors_name_recorded_at_first_then_duplicates_in_container_order() {
        let now = Utc::now();
        let ids = [Some("x"), Some("y"), Some("y"), Some("x")];
        let errors: Vec<String> =
            rule_errors(Some(now + Duration::hours(1)), ids.into_iter(), now, SKEW)
                .into_iter()
                .map(|e| e.field)
                .collect();
        assert_eq!(
            errors,
            [
                "recorded_at",
                "containers.2.container_id",
                "containers.3.container_id"
            ]
        );
    }

    #[test]
    fn a_recorded_at_that_is_not_a_timestamp_is_left_to_the_schema_check() {
        let now = Utc::now();
        assert_eq!(
            rule_errors(None, [Some("a")].into_iter(), now, SKEW),
            Vec::<FieldError>::new()
        );
    }
}
