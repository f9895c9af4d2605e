//! `POST /agent/telemetry`: an agent pushes one snapshot of its host and containers.

use poem::web::Data;
use poem_openapi::{ApiResponse, OpenApi};

use super::agent_auth::{AgentToken, agent_auth};
use super::problem::{Problem, ProblemJson, internal_problem, unavailable_problem};
use super::telemetry_body::TelemetryBody;
use super::{ApiTags, AppState, metrics};
use crate::domain::payload::salvage::DroppedContainer;
use crate::error::{BEARER_CHALLENGE, Error, UNAVAILABLE_RETRY_AFTER_SECS};
use crate::store::ingest::{Outcome, Submission};

pub struct TelemetryApi;

/// Every answer of the telemetry endpoint. Errors carry RFC 9457 problem details.
#[derive(ApiResponse)]
pub enum IngestResponse {
    /// Stored, or already stored: a retried snapshot (same host and `recorded_at`) is
    /// acknowledged without writing a second row. Containers that broke the contract were left
    /// out (the host and every other container are stored); `X-Dropped-Containers` names them.
    #[oai(status = 204)]
    Stored(
        /// Requests allowed per minute for this token.
        #[oai(header = "X-RateLimit-Limit")]
        u32,
        /// Requests this token may still make in the current 60-second window.
        #[oai(header = "X-RateLimit-Remaining")]
        u32,
        /// Positions (0-based, comma-separated) in the posted `containers` array of the
        /// containers left out because they broke the contract; absent when none was.
        #[oai(header = "X-Dropped-Containers")]
        Option<String>,
    ),
    /// The body is not JSON (or is empty).
    #[oai(status = 400)]
    BadRequest(ProblemJson),
    /// Missing, malformed, unknown or revoked token, the token's host is archived, or a
    /// fingerprint-bound token used by another client. Never replaced by a 429, however many
    /// failures the client's address had: an agent that gets it should stop.
    #[oai(status = 401)]
    Unauthorized(ProblemJson, #[oai(header = "WWW-Authenticate")] String),
    /// The body did not arrive within the read timeout.
    #[oai(status = 408)]
    RequestTimeout(ProblemJson),
    /// The body exceeds the configured limit (compressed or inflated).
    #[oai(status = 413)]
    PayloadTooLarge(ProblemJson),
    /// The body is not `application/json`, or its `Content-Encoding` is neither gzip nor identity.
    #[oai(status = 415)]
    UnsupportedMediaType(ProblemJson),
    /// The body breaks the contract; `errors` names every failing field by path.
    #[oai(status = 422)]
    Unprocessable(ProblemJson),
    /// The token's own rate limit is used up (problem type `rate-limited`, with the quota
    /// headers; requests in the last 60 seconds).
    #[oai(status = 429)]
    TooManyRequests(
        ProblemJson,
        /// Seconds until the next request will be admitted.
        #[oai(header = "Retry-After")]
        u64,
        /// Requests allowed per minute for this token (when its quota is what is used up).
        #[oai(header = "X-RateLimit-Limit")]
        Option<u32>,
        /// Requests left in the current burst: 0 (when the token's quota is what is used up).
        #[oai(header = "X-RateLimit-Remaining")]
        Option<u32>,
    ),
    /// An unexpected server fault; nothing was changed.
    #[oai(status = 500)]
    InternalError(ProblemJson),
    /// The database is unreachable; nothing was changed. Retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(ProblemJson, #[oai(header = "Retry-After")] u64),
}

impl From<Error> for IngestResponse {
    fn from(error: Error) -> Self {
        let problem = ProblemJson(Problem::from(&error));
        match error {
            Error::MalformedBody(_) => Self::BadRequest(problem),
            Error::Unauthorized => Self::Unauthorized(problem, BEARER_CHALLENGE.into()),
            Error::PayloadTooLarge { .. } => Self::PayloadTooLarge(problem),
            Error::BodyTimeout(_) => Self::RequestTimeout(problem),
            Error::UnsupportedMediaType(_) => Self::UnsupportedMediaType(problem),
            Error::Validation(_) => Self::Unprocessable(problem),
            Error::RateLimited { .. } | Error::AuthFailuresLimited { .. } => {
                Self::TooManyRequests(problem, error.retry_after_secs().unwrap_or(1), None, None)
            }
            Error::Unavailable(_) => {
                Self::Unavailable(unavailable_problem(&error), UNAVAILABLE_RETRY_AFTER_SECS)
            }
            Error::NotFound(_) | Error::Conflict(..) | Error::Internal(_) => {
                Self::InternalError(internal_problem(&error))
            }
        }
    }
}

#[OpenApi]
impl TelemetryApi {
    /// Push a telemetry snapshot
    ///
    /// Records the host's facts, status and metrics and each container's state and metrics,
    /// atomically. Checked in this order: token (401), rate limit (429), body (413, 415, 400,
    /// 422), then stored (204). A 503 also answers an unknown bearer from an address past its
    /// failure budget while the server's token index is not loaded, so that a valid agent
    /// retries rather than stops.
    #[oai(
        path = "/agent/telemetry",
        method = "post",
        operation_id = "push_telemetry",
        tag = "ApiTags::Agent",
        transform = "agent_auth"
    )]
    async fn push_telemetry(
        &self,
        state: Data<&AppState>,
        auth: AgentToken,
        /// The snapshot. It may be sent gzip-compressed with `Content-Encoding: gzip` (the
        /// size limit applies to the compressed and to the inflated body).
        body: TelemetryBody,
    ) -> IngestResponse {
        let AgentToken(session) = auth;
        let TelemetryBody(accepted) = body;
        let started = std::time::Instant::now();
        let dropped = accepted.dropped;
        let snapshot = accepted.snapshot;
        let result = async {
            let submission = Submission {
                host_id: session.agent.host_id,
                token_id: session.agent.token_id,
                snapshot,
            };
            match state.ingest_queue.ingest(submission).await? {
                Outcome::Stored(written) => {
                    let ages: Vec<std::time::Duration> = written
                        .post_ages_ms
                        .iter()
                        .map(|&ms| std::time::Duration::from_millis(ms.max(0) as u64))
                        .collect();
                    state.rate_limit.learn_fleet(
                        session.agent.token_id,
                        &ages,
                        std::time::Instant::now(),
                    );
                    Ok(written)
                }
                Outcome::Refused => Err(Error::Unauthorized),
            }
        };
        match result.await {
            Ok(written) => {
                metrics::record_ingest(started.elapsed(), written.container_rows);
                IngestResponse::Stored(
                    session.quota.limit,
                    session.quota.remaining,
                    report_dropped(session.agent.host_id, &dropped),
                )
            }
            Err(error) => error.into(),
        }
    }
}

/// Logs and counts the containers left out of a stored snapshot; the value of the
/// `X-Dropped-Containers` header that tells the agent which they were.
fn report_dropped(host_id: i64, dropped: &[DroppedContainer]) -> Option<String> {
    if dropped.is_empty() {
        return None;
    }
    metrics::record_dropped_containers(dropped.len());
    let errors: Vec<String> = dropped
        .iter()
        .flat_map(|container| &container.errors)
        .map(|error| format!("{}: {}", error.field, error.message))
        .collect();
    tracing::warn!(
        host_id,
        dropped = dropped.len(),
        errors = errors.join("; "),
        "containers that break the contract were left out of a stored snapshot"
    );
    let positions: Vec<String> = dropped.iter().map(|c| c.index.to_string()).collect();
    Some(positions.join(","))
}
