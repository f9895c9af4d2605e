//! Reading a request body off the wire, for every JSON body the API takes.
//!
//! Errors follow the contract: a body over the limit → 413 (refused from `Content-Length`
//! before reading, or as soon as the stream passes the limit). Bodies may be gzip-compressed
//! (`Content-Encoding: gzip`); the limit then applies to the compressed and to the inflated
//! size, enforced while streaming, so a small bomb costs at most `limit` bytes of memory.
//! Other encodings → 415. A body that takes longer than the read timeout to arrive → 408.

use std::pin::Pin;
use std::time::Duration;

use async_compression::tokio::bufread::GzipDecoder;
use poem::{Request, RequestBody};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use crate::error::Error;

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

/// Whether a `Content-Type` is JSON's (parameters such as `charset` aside).
pub fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body, inflating it if gzip-compressed, without ever holding more than the limit.
pub async fn read_body(
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
