//! `ValidJson<T>`: a JSON request body checked against the published schema of `T`.
//!
//! Errors follow the contract: a body over the limit → 413 (refused from `Content-Length`
//! before reading, or as soon as the stream passes the limit), not JSON → 400, anything that
//! breaks the schema → 422 naming every failing field. Bodies may be gzip-compressed
//! (`Content-Encoding: gzip`); the limit then applies to the compressed and to the inflated
//! size, enforced while streaming, so a small bomb costs at most `limit` bytes of memory.
//! Other encodings → 415. A body that takes longer than the read timeout to arrive → 408.

use std::pin::Pin;
use std::time::Duration;

use async_compression::tokio::bufread::GzipDecoder;
use poem::{Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use crate::domain::payload::check::Schema;
use crate::domain::payload::{Declined, FastBody};
use crate::error::Error;
use crate::http::metrics;

/// How request bodies are read; provided as request data by the app.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body accepted, in bytes, before and after decompression.
    pub max_bytes: usize,
    /// Longest time the whole body may take to arrive.
    pub read_timeout: Duration,
}

/// The most a body buffer reserves before its bytes arrive (a C=20 snapshot is ~25 KB).
const INITIAL_BODY_CAPACITY: usize = 64 * 1024;

pub struct ValidJson<T>(pub T);

impl<T: Type> Payload for ValidJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned + FastBody + 'static> ParsePayload for ValidJson<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limits = *request
            .data::<BodyLimits>()
            .expect("BodyLimits is app data");
        let bytes = read_body(request, body, limits).await?;
        Ok(Self(parse(&bytes)?))
    }
}

/// Reads the body, inflating it if gzip-compressed, without ever holding more than the limit.
pub(crate) async fn read_body(
    request: &Request,
    body: &mut RequestBody,
    limits: BodyLimits,
) -> Result<Vec<u8>, Error> {
    let limit = limits.max_bytes;
    let gzip = match request.header("Content-Encoding").map(str::trim) {
        None | Some("") => false,
        Some(encoding) if encoding.eq_ignore_ascii_case("identity") => false,
        Some(encoding)
            if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") =>
        {
            true
        }
        Some(other) => {
            return Err(Error::UnsupportedMediaType(format!(
                "Content-Encoding `{other}` is not supported; send gzip or no encoding"
            )));
        }
    };
    let declared = request
        .header("Content-Length")
        .and_then(|length| length.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let raw = body
        .take()
        .map_err(|_| Error::MalformedBody("the request body was already read".into()))?;
    // One byte over the limit is enough to know the limit was passed.
    let raw = raw.into_async_read().take(limit as u64 + 1);
    let reader: Pin<Box<dyn AsyncRead + Send>> = if gzip {
        Box::pin(GzipDecoder::new(BufReader::new(raw)))
    } else {
        Box::pin(raw)
    };
    // Sized from the declared length instead of doubling through the reads, but not beyond
    // what a typical snapshot needs: a client declaring a large body and sending it slowly must
    // not hold memory for bytes it has not sent. Larger and inflated bodies grow from there.
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(INITIAL_BODY_CAPACITY));
    let mut limited = reader.take(limit as u64 + 1);
    let read = limited.read_to_end(&mut bytes);
    match tokio::time::timeout(limits.read_timeout, read).await {
        Err(_) => return Err(Error::BodyTimeout(limits.read_timeout)),
        Ok(Err(error)) if gzip && error.kind() == std::io::ErrorKind::InvalidData => {
            return Err(Error::MalformedBody(format!(
                "the body is not valid gzip: {error}"
            )));
        }
        Ok(Err(error)) => {
            return Err(Error::MalformedBody(format!(
                "could not read the request body: {error}"
            )));
        }
        Ok(Ok(_)) => {}
    }
    if bytes.len() > limit {
        return Err(Error::PayloadTooLarge { limit });
    }
    Ok(bytes)
}

impl_apirequest_for_payload!(ValidJson<T>, T: Type + DeserializeOwned + FastBody + 'static);

/// Parses and checks a JSON document against the schema of `T`.
///
/// A type with a reader of its own ([`FastBody`]: the telemetry payload) tries it first; it
/// answers only for a document that conforms. What it declines, and every body of other types,
/// takes the `Value` path, which names every failing field. Both end the same way for every
/// input, the same `T` or the same errors (the tests below hold them to it, on generated bodies
/// too), given that `T` does not care about the order of keys within an object (a `Value`
/// sorts them): the body types are plain structs, options, vectors and `Labels` (sorted by
/// name), which do not; a repeated property sends the document down the `Value` path.
pub fn parse<T: Type + DeserializeOwned + FastBody + 'static>(bytes: &[u8]) -> Result<T, Error> {
    match parse_conforming(bytes)? {
        Some(parsed) => Ok(parsed),
        None => parse_via_value(bytes, &Schema::of::<T>()),
    }
}

/// The fast path of [`parse`]: `T` when its reader vouches for the document, `None` when the
/// `Value` path must say what is wrong (each decline counted by its reason). An empty body is a
/// 400.
pub fn parse_conforming<T: FastBody>(bytes: &[u8]) -> Result<Option<T>, Error> {
    if bytes.is_empty() {
        return Err(Error::MalformedBody(
            "the request body is empty; a JSON object is expected".into(),
        ));
    }
    let Some(read) = T::READER else {
        return Ok(None);
    };
    let read = std::str::from_utf8(bytes)
        .map_err(|_| Declined::Invalid)
        .and_then(read);
    match read {
        Ok(parsed) => Ok(Some(parsed)),
        Err(why) => {
            metrics::record_fast_path_declined(why);
            Ok(None)
        }
    }
}

/// The body as a JSON `Value` (400 when it is not JSON).
pub fn value_of(bytes: &[u8]) -> Result<serde_json::Value, Error> {
    serde_json::from_slice(bytes).map_err(|error| {
        Error::MalformedBody(format!("the request body is not valid JSON: {error}"))
    })
}

/// The slow path of [`parse`]: every failing field, by path, in the schema's order.
fn parse_via_value<T: DeserializeOwned>(bytes: &[u8], schema: &Schema) -> Result<T, Error> {
    let value = value_of(bytes)?;
    let errors = schema.check(&value);
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    // The schema check admits only what the type accepts; this is a safety net, not a path.
    serde_json::from_value(value).map_err(|error| Error::invalid("", error.to_string()))
}

#[cfg(test)]
mod tests {
    //! The fast path must end exactly as the `Value` path for every body: the same `T`, or the
    //! same error with the same fields, messages and order.

    use nexus_contract::TelemetryPayload;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use nexus_test_support::bodies::{self, awkward_values, pointers};

    use crate::api::admin::hosts::NewHost;
    use crate::domain::payload::reader;

    const FIXTURE: &str = include_str!("../../benches/fixtures/telemetry-20.json");

    /// What `parse` did before it had a fast path.
    fn value_path<T: Type + DeserializeOwned + FastBody + 'static>(
        bytes: &[u8],
    ) -> Result<T, Error> {
        if bytes.is_empty() {
            return parse(bytes);
        }
        parse_via_value(bytes, &Schema::of::<T>())
    }

    fn assert_same_outcome<T>(bytes: &[u8], case: &str)
    where
        T: Type + DeserializeOwned + FastBody + std::fmt::Debug + 'static,
    {
        assert_eq!(
            format!("{:?}", parse::<T>(bytes)),
            format!("{:?}", value_path::<T>(bytes)),
            "{case}: {}",
            String::from_utf8_lossy(bytes)
        );
    }

    /// As [`assert_same_outcome`], and a payload the `Value` path accepts took the reader.
    fn assert_same_outcome_read_when_accepted(bytes: &[u8], case: &str) {
        assert_same_outcome::<TelemetryPayload>(bytes, case);
        if value_path::<TelemetryPayload>(bytes).is_ok() {
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
            assert_eq!(parse::<TelemetryPayload>(text.as_bytes()).unwrap(), through_value, "{case}");
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
            assert_same_outcome::<TelemetryPayload>(case.as_bytes(), case);
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
            assert_same_outcome::<TelemetryPayload>(case, "not one JSON object");
        }
    }

    #[test]
    fn other_bodies_take_the_value_path_which_names_every_failing_field() {
        let long = "a".repeat(256);
        for (body, failing) in [
            (json!({"name": "web"}), vec![]),
            (json!({"name": "web", "slug": "web-01"}), vec![]),
            (json!({"name": "web", "slug": "Web 01"}), vec!["slug"]),
            (json!({"name": "", "slug": long}), vec!["name", "slug"]),
            (
                json!({"name": "web", "labels": {"k": long}}),
                vec!["labels.k"],
            ),
            (
                json!({"name": 5, "labels": {"k": 1}}),
                vec!["name", "labels.k"],
            ),
        ] {
            let bytes = serde_json::to_vec(&body).unwrap();
            let fields = match parse::<NewHost>(&bytes) {
                Ok(_) => vec![],
                Err(Error::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
                Err(other) => panic!("{body}: {other:?}"),
            };
            assert_eq!(fields, failing, "{body}");
        }
    }

    proptest! {
        #[test]
        fn generated_payloads_are_read_by_the_reader_as_through_a_value(body in bodies::valid()) {
            prop_assert!(value_path::<TelemetryPayload>(&body.bytes).is_ok(), "{body:?}");
            assert_same_outcome_read_when_accepted(&body.bytes, &format!("{body:?}"));
        }

        #[test]
        fn damaged_payloads_end_as_through_a_value(body in bodies::damaged()) {
            assert_same_outcome::<TelemetryPayload>(&body.bytes, &format!("{body:?}"));
        }
    }
}
