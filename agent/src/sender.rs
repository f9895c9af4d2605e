//! Delivers one snapshot to `POST /agent/telemetry` and says what the server made of it.
//!
//! Bodies go gzip-compressed while the server accepts that: the first `415` to a gzip body turns
//! compression off for the rest of the process (logged once) and the snapshot is resent plain.
//! A `400` to a gzip body is retried plain too, and turns compression off if that succeeds (a
//! server that ignores `Content-Encoding` reads the compressed bytes as broken JSON).

use std::time::Duration;

use nexus_contract::TELEMETRY_PATH;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;

use crate::buffer::PendingSnapshot;
use crate::config::Secret;

pub const AGENT_USER_AGENT: &str = concat!("nexus-agent/", env!("CARGO_PKG_VERSION"));

/// Wait used when a 429 or 503 carries no usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// 204: stored, or already stored (a retry of the same `recorded_at`).
    Stored,
    /// 401: the token is wrong or revoked; retrying cannot help.
    Unauthorized,
    /// 429: try again after this long.
    RateLimited(Duration),
    /// 5xx or no answer: keep the snapshot and try again later.
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx: the server will never take this snapshot.
    Rejected { status: u16, problem: String },
}

/// Posts snapshots to one server with one token.
pub struct Sender {
    client: Client,
    url: Url,
    authorization: Secret,
    gzip: bool,
}

impl Sender {
    /// `base_url` is the server's root (`https://nexus.example.com`, optionally with a path
    /// prefix); the telemetry path is appended.
    pub fn new(
        base_url: &Url,
        token: &Secret,
        gzip: bool,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> anyhow::Result<Self> {
        // reqwest is built without a bundled crypto provider; ring is the one linked in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .build()?;
        Ok(Self {
            client,
            url: telemetry_url(base_url)?,
            authorization: Secret::new(format!("Bearer {}", token.expose())),
            gzip,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn gzip_enabled(&self) -> bool {
        self.gzip
    }

    /// One attempt (two when the server turns out not to accept gzip).
    pub async fn deliver(&mut self, snapshot: &PendingSnapshot) -> Delivery {
        if !self.gzip {
            return self.deliver_plain(snapshot).await;
        }
        match self.post(snapshot.gzip_body.clone(), true).await {
            Ok((StatusCode::UNSUPPORTED_MEDIA_TYPE, _)) => {
                self.stop_compressing("415");
                self.deliver_plain(snapshot).await
            }
            // A server that ignores Content-Encoding reads the compressed bytes as JSON and
            // answers 400; if the same snapshot uncompressed is fine, compression is the cause.
            // The plain answer is the one that counts for the snapshot either way.
            Ok((StatusCode::BAD_REQUEST, _)) => {
                let plain = self.deliver_plain(snapshot).await;
                if plain == Delivery::Stored {
                    self.stop_compressing("400 to a compressed body, 204 to the same uncompressed");
                }
                plain
            }
            Ok((status, response)) => classify(status, response).await,
            Err(error) => unavailable(&error),
        }
    }

    fn stop_compressing(&mut self, evidence: &str) {
        tracing::warn!(
            "the server does not accept gzip-compressed bodies ({evidence}); sending uncompressed from now on"
        );
        self.gzip = false;
    }

    async fn deliver_plain(&self, snapshot: &PendingSnapshot) -> Delivery {
        let body = match snapshot.json_body() {
            Ok(body) => body,
            Err(error) => {
                return Delivery::Rejected {
                    status: 0,
                    problem: format!("the buffered snapshot could not be decoded: {error}"),
                };
            }
        };
        match self.post(body, false).await {
            Ok((status, response)) => classify(status, response).await,
            Err(error) => unavailable(&error),
        }
    }

    async fn post(
        &self,
        body: Vec<u8>,
        gzip: bool,
    ) -> Result<(StatusCode, reqwest::Response), reqwest::Error> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, self.authorization.expose())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, AGENT_USER_AGENT)
            .body(body);
        if gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let response = request.send().await?;
        Ok((response.status(), response))
    }
}

/// `<base>/agent/telemetry`, keeping any path prefix of the base URL.
pub fn telemetry_url(base_url: &Url) -> anyhow::Result<Url> {
    if !matches!(base_url.scheme(), "http" | "https") {
        anyhow::bail!("must be an http:// or https:// URL");
    }
    let mut url = base_url.clone();
    let prefix = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{prefix}{TELEMETRY_PATH}"));
    url.set_query(None);
    Ok(url)
}

async fn classify(status: StatusCode, response: reqwest::Response) -> Delivery {
    let retry_after = retry_after(&response);
    match status {
        status if status.is_success() => {
            // The server stored the snapshot without the containers that broke its contract.
            if let Some(dropped) = response
                .headers()
                .get("X-Dropped-Containers")
                .and_then(|value| value.to_str().ok())
            {
                tracing::warn!(
                    positions = dropped,
                    "the server left out containers it found invalid (positions in the snapshot's containers); see its log"
                );
            }
            Delivery::Stored
        }
        StatusCode::UNAUTHORIZED => Delivery::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => {
            Delivery::RateLimited(retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
        }
        status if status.is_server_error() => Delivery::Unavailable {
            reason: format!("the server answered {status}"),
            retry_after,
        },
        status => {
            let body = response.text().await.unwrap_or_default();
            Delivery::Rejected {
                status: status.as_u16(),
                problem: describe_problem(&body),
            }
        }
    }
}

fn unavailable(error: &reqwest::Error) -> Delivery {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // The innermost cause is the informative part; the URL is logged once at start.
    let mut source: &dyn std::error::Error = error;
    while let Some(inner) = source.source() {
        source = inner;
    }
    Delivery::Unavailable {
        reason: format!("{kind}: {source}"),
        retry_after: None,
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[derive(Debug, Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<FieldProblem>,
}

#[derive(Debug, Deserialize)]
struct FieldProblem {
    field: Option<String>,
    message: Option<String>,
}

/// An RFC 9457 problem body in one line: `title: detail (field: message; …)`; other bodies as
/// they came, shortened.
pub fn describe_problem(body: &str) -> String {
    let Ok(problem) = serde_json::from_str::<Problem>(body) else {
        return body.chars().take(500).collect();
    };
    let mut text = problem.title.unwrap_or_else(|| "problem".to_owned());
    if let Some(detail) = problem.detail {
        text = format!("{text}: {detail}");
    }
    if !problem.errors.is_empty() {
        let fields: Vec<String> = problem
            .errors
            .iter()
            .map(|error| {
                format!(
                    "{}: {}",
                    error.field.as_deref().unwrap_or("?"),
                    error.message.as_deref().unwrap_or("?")
                )
            })
            .collect();
        text = format!("{text} ({})", fields.join("; "));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_url_keeps_a_path_prefix_and_ignores_a_trailing_slash() {
        let url = |base: &str| {
            telemetry_url(&Url::parse(base).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(url("http://h:8080"), "http://h:8080/agent/telemetry");
        assert_eq!(url("https://h/nexus/"), "https://h/nexus/agent/telemetry");
    }

    #[test]
    fn problem_details_name_every_failing_field() {
        let body = r#"{"type":"about:blank","title":"Unprocessable","status":422,
            "detail":"the body breaks the contract",
            "errors":[{"field":"recorded_at","message":"must not be more than 1 hour in the past"}]}"#;
        assert_eq!(
            describe_problem(body),
            "Unprocessable: the body breaks the contract (recorded_at: must not be more than 1 hour in the past)"
        );
    }
}
