//! `TelemetryBody`: the body of `POST /agent/telemetry`, read as [`ValidJson`] reads any body
//! (same limits, encodings and statuses), then made a [`Snapshot`] against the server's clock.
//! Containers that break the contract are left out rather than costing the whole snapshot
//! ([`salvage`](super::salvage)).

use chrono::Utc;
use nexus_contract::TelemetryPayload;
use poem::{Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};

use super::json::{self, ValidJson};
use super::read::{self, BodyLimits};
use super::reader::Declined;
use super::salvage::Accepted;
use crate::api::AppState;
use crate::domain::schema_check::Schema;
use crate::domain::snapshot::{SkewWindow, Snapshot};
use crate::error::Error;
use crate::http::metrics;

/// A telemetry snapshot to store, and the posted containers left out of it.
pub struct TelemetryBody(pub Accepted);

impl Payload for TelemetryBody {
    const CONTENT_TYPE: &'static str = ValidJson::<TelemetryPayload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        ValidJson::<TelemetryPayload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        ValidJson::<TelemetryPayload>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        ValidJson::<TelemetryPayload>::register(registry);
    }
}

impl ParsePayload for TelemetryBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limits = *request
            .data::<BodyLimits>()
            .expect("BodyLimits is app data");
        let skew = request
            .data::<AppState>()
            .expect("AppState is app data")
            .skew;
        let bytes = read::read_body(request, body, limits).await?;
        Ok(Self(accept(&bytes, Utc::now(), skew)?))
    }
}

impl_apirequest_for_payload!(TelemetryBody);

/// The snapshot in `bytes`: the payload's reader for a conforming document, else the `Value`
/// path, which names every failing field or leaves out the failing containers.
pub fn accept(
    bytes: &[u8],
    now: chrono::DateTime<Utc>,
    skew: SkewWindow,
) -> Result<Accepted, Error> {
    if let Some(payload) = read_conforming(bytes)? {
        let snapshot = Snapshot::new(payload, now, skew).map_err(Error::Validation)?;
        return Ok(Accepted::whole(snapshot));
    }
    let value = json::value_of(bytes)?;
    Accepted::from_value(value, &Schema::of::<TelemetryPayload>(), now, skew)
        .map_err(Error::Validation)
}

/// The payload as [`accept`] reads it, before the snapshot's rules: the reader first, the
/// `Value` path ([`json::parse`]) for what it declines.
///
/// Both end the same way for every input, the same payload or the same errors (the tests below
/// hold them to it, on generated bodies too), given that the payload does not care about the
/// order of keys within an object (a `Value` sorts them): it is plain structs, options, vectors
/// and `Labels` (sorted by name); a repeated property sends the document down the `Value` path.
pub fn parse_payload(bytes: &[u8]) -> Result<TelemetryPayload, Error> {
    match read_conforming(bytes)? {
        Some(payload) => Ok(payload),
        None => json::parse(bytes),
    }
}

/// The fast path: the payload when the reader vouches for the document, `None` when the
/// `Value` path must say what is wrong (each decline counted by its reason). An empty body is a
/// 400.
fn read_conforming(bytes: &[u8]) -> Result<Option<TelemetryPayload>, Error> {
    let text = std::str::from_utf8(json::non_empty(bytes)?).map_err(|_| Declined::Invalid);
    match text.and_then(super::reader::read) {
        Ok(payload) => Ok(Some(payload)),
        Err(why) => {
            metrics::record_fast_path_declined(why.label());
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    //! The fast path must end exactly as the `Value` path for every body: the same payload, or
    //! the same error with the same fields, messages and order.

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::api::body::reader;
    use nexus_test_support::bodies::{self, awkward_values, pointers};

    const FIXTURE: &str = include_str!("../../../benches/fixtures/telemetry-20.json");

    /// The `Value` path alone, which the reader stands in front of.
    fn value_path(bytes: &[u8]) -> Result<TelemetryPayload, Error> {
        json::parse(bytes)
    }

    fn assert_same_outcome(bytes: &[u8], case: &str) {
        assert_eq!(
            format!("{:?}", parse_payload(bytes)),
            format!("{:?}", value_path(bytes)),
            "{case}: {}",
            String::from_utf8_lossy(bytes)
        );
    }

    /// As [`assert_same_outcome`], and a payload the `Value` path accepts took the reader.
    fn assert_same_outcome_read_when_accepted(bytes: &[u8], case: &str) {
        assert_same_outcome(bytes, case);
        if value_path(bytes).is_ok() {
            let text = std::str::from_utf8(bytes).unwrap();
            assert_eq!(reader::read(text).err(), None, "{case}: not read");
        }
    }

    /// A small conforming payload that sets every field once.
    fn full_payload() -> Value {
        json!({
            "recorded_at": "2024-05-01T12:00:00Z",
            "host": {
                "metrics": {"cpu_percent": 12.5, "memory_used_mb": 2048, "memory_total_mb": 8192,
                            "disk_used_gb": 40, "disk_total_gb": 100, "load_average": 0.4,
                            "network_rx_bytes": 123456, "network_tx_bytes": 654321},
                "facts": {"cpu_count": 4, "memory_total_mb": 8192, "disk_total_gb": 100,
                          "os": "Debian GNU/Linux 12 (bookworm)", "docker_version": "27.1.1"}
            },
            "containers": [{
                "container_id": "3f2a9c1b7d4e", "name": "web", "image": "nginx", "image_tag": "1.27",
                "state": "running", "status": "Up 3 hours", "health_status": "healthy",
                "ports": ["0.0.0.0:8080->80/tcp"], "labels": {"com.docker.compose.project": "shop"},
                "metrics": {"cpu_percent": 3.2, "memory_usage_mb": 64, "memory_limit_mb": 512,
                            "network_rx_bytes": 1, "network_tx_bytes": 2,
                            "block_read_bytes": 3, "block_write_bytes": 4},
                "started_at": "2024-05-01T09:00:00Z", "finished_at": "2024-05-01T10:00:00+02:00",
                "restart_count": 2, "exit_code": 137, "oom_killed": true
            }]
        })
    }

    #[test]
    fn conforming_payloads_take_the_fast_path_and_parse_as_through_a_value() {
        for (case, text) in [
            ("the benchmark fixture", FIXTURE.to_string()),
            ("every field set", full_payload().to_string()),
            (
                "the minimal payload",
                r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}}}"#.into(),
            ),
            (
                "escapes and unknown fields",
                r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{},"facts":{"os":"D\u00e9bian \"12\""}},"x":[{"y":null}]}"#
                    .into(),
            ),
        ] {
            assert!(reader::read(&text).is_ok(), "{case}");
            let value: Value = serde_json::from_str(&text).unwrap();
            let through_value: TelemetryPayload = serde_json::from_value(value).unwrap();
            assert_eq!(parse_payload(text.as_bytes()).unwrap(), through_value, "{case}");
        }
    }

    #[test]
    fn every_field_set_to_every_awkward_value_ends_as_through_a_value() {
        let base = full_payload();
        let mut paths = Vec::new();
        pointers(&base, String::new(), &mut paths);
        for path in &paths {
            for replacement in awkward_values() {
                let mut value = base.clone();
                *value.pointer_mut(path).unwrap() = replacement.clone();
                let bytes = serde_json::to_vec(&value).unwrap();
                let case = format!("{path} = {replacement}");
                assert_same_outcome_read_when_accepted(&bytes, &case);
            }
        }
    }

    #[test]
    fn every_field_left_out_ends_as_through_a_value() {
        let base = full_payload();
        let mut paths = Vec::new();
        pointers(&base, String::new(), &mut paths);
        // The root (the empty pointer) has no parent to leave it out of.
        for path in paths.iter().filter(|path| path.contains('/')) {
            let (parent, key) = path.rsplit_once('/').unwrap();
            let mut value = base.clone();
            match value.pointer_mut(parent).unwrap() {
                Value::Object(map) => drop(map.remove(key)),
                Value::Array(items) => drop(items.remove(key.parse::<usize>().unwrap())),
                _ => unreachable!(),
            }
            let bytes = serde_json::to_vec(&value).unwrap();
            let case = format!("without {path}");
            assert_same_outcome_read_when_accepted(&bytes, &case);
        }
    }

    #[test]
    fn repeated_keys_end_as_through_a_value() {
        let cases = [
            r#"{"recorded_at":"2024-05-01T12:00:00Z","recorded_at":"later","host":{"metrics":{}}}"#,
            r#"{"recorded_at":"yesterday","recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}}}"#,
            r#"{"recorded_at":"2024-05-01T12:00:00Z","recorded_at":null,"host":{"metrics":{}}}"#,
            r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{"cpu_percent":1,"cpu_percent":2}}}"#,
            r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}},"x":1,"x":2}"#,
            r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}},"containers":[{"container_id":"a","name":"n","image":"i","labels":{"k":"1","k":"2"}}]}"#,
            r#"{"recorded_at":"2024-05-01T12:00:00Z","host":{"metrics":{}},"containers":[{"container_id":"a","name":"n","image":"i","labels":{"k":"\u0000","k":"2"}}]}"#,
        ];
        for case in cases {
            assert_same_outcome(case.as_bytes(), case);
        }
    }

    #[test]
    fn bodies_that_are_not_one_json_object_end_as_through_a_value() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases: [&[u8]; 11] = [
            b"",
            b"   ",
            b"null",
            b"[]",
            b"\"text\"",
            b"{",
            b"{} {}",
            b"{\"recorded_at\":\"2024-05-01T12:00:00Z\",\"host\":{\"metrics\":{}}} x",
            b"{\"recorded_at\":\"2024-05-01T12:00:00Z\",\"host\":{\"metrics\":{\"os\":\"\xff\"}}}",
            b"{\"recorded_at\":\"2024-05-01T12:00:00Z\",\"host\":{\"metrics\":{}},\"x\":\"\x01\"}",
            deep.as_bytes(),
        ];
        for case in cases {
            assert_same_outcome(case, "not one JSON object");
        }
    }

    proptest! {
        #[test]
        fn generated_payloads_are_read_by_the_reader_as_through_a_value(body in bodies::valid()) {
            prop_assert!(value_path(&body.bytes).is_ok(), "{body:?}");
            assert_same_outcome_read_when_accepted(&body.bytes, &format!("{body:?}"));
        }

        #[test]
        fn damaged_payloads_end_as_through_a_value(body in bodies::damaged()) {
            assert_same_outcome(&body.bytes, &format!("{body:?}"));
        }
    }
}
