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

use crate::domain::schema_check::Schema;
use crate::error::Error;

/// How request bodies are read; provided as request data by the app.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body accepted, in bytes, before and after decompression.
    pub max_bytes: usize,
    /// Longest time the whole body may take to arrive.
    pub read_timeout: Duration,
}

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

impl<T: Type + DeserializeOwned + 'static> ParsePayload for ValidJson<T> {
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
async fn read_body(
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
    let mut bytes = Vec::new();
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

impl_apirequest_for_payload!(ValidJson<T>, T: Type + DeserializeOwned + 'static);

/// Parses and checks a JSON document against the schema of `T`.
///
/// The common case, a conforming document, takes a fast path: a scan of the bytes against the
/// schema, then a typed parse straight from the bytes. Anything else (or anything the scan
/// cannot vouch for) takes the slow path, which builds a `Value` to name every failing field.
/// Both end the same way for every input: the scan passes only documents `check` passes, and
/// `T` parsed from those bytes equals `T` parsed from their `Value` (maps are the same
/// key-sorted `BTreeMap`s either way; a repeated property sends the document down the slow path).
pub fn parse<T: Type + DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.is_empty() {
        return Err(Error::MalformedBody(
            "the request body is empty; a JSON object is expected".into(),
        ));
    }
    let schema = Schema::of::<T>();
    if schema.surely_conforms(bytes)
        && let Ok(parsed) = serde_json::from_slice(bytes)
    {
        return Ok(parsed);
    }
    parse_via_value(bytes, &schema)
}

/// The slow path of [`parse`]: every failing field, by path, in the schema's order.
fn parse_via_value<T: DeserializeOwned>(bytes: &[u8], schema: &Schema) -> Result<T, Error> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        Error::MalformedBody(format!("the request body is not valid JSON: {error}"))
    })?;
    let errors = schema.check(&value);
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    // The schema check admits only what the type accepts; this is a safety net, not a path.
    serde_json::from_value(value).map_err(|error| Error::invalid("", error.to_string()))
}
