//! `POST /agent/telemetry`: an agent pushes one snapshot of its host and containers.

use poem::web::Data;
use poem_openapi::{ApiResponse, OpenApi};

use super::admission::{AgentToken, IngestVerdict, admission};
use crate::api::body::salvage::DroppedContainer;
use crate::api::body::telemetry::TelemetryBody;
use crate::api::openapi::operation_errors::{
    BODY_NOT_JSON, CHALLENGE, DocumentedHeader, DocumentedProblem, OperationError, SERVER_FAULTS,
    documented,
};
use crate::api::{ApiTags, AppState};
use crate::error::Error;
use crate::http::metrics;
use crate::store::ingest::{Outcome, Submission};

#[derive(Default)]
pub struct TelemetryApi;

/// The telemetry endpoint's answer when it stores; [`PushTelemetry`] lists the others, which
/// carry RFC 9457 problem details.
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
}

documented! {
    /// What `POST /agent/telemetry` answers when it does not store.
    pub PushTelemetry: [
        BODY_NOT_JSON,
        DocumentedProblem::new(
            401,
            "Missing, malformed, unknown or revoked token, the token's host is archived, or a\n\
             fingerprint-bound token used by another client. Never replaced by a 429, however many\n\
             failures the client's address had: an agent that gets it should stop.",
        )
        .with_headers(&[CHALLENGE]),
        DocumentedProblem::new(408, "The body did not arrive within the read timeout."),
        DocumentedProblem::new(
            413,
            "The body exceeds the configured limit (compressed or inflated).",
        ),
        DocumentedProblem::new(
            415,
            "The body is not `application/json`, or its `Content-Encoding` is neither gzip nor \
             identity.",
        ),
        DocumentedProblem::new(
            422,
            "The body breaks the contract; `errors` names every failing field by path.",
        ),
        DocumentedProblem::new(
            429,
            "The token's own rate limit is used up (problem type `rate-limited`, with the quota\n\
             headers; requests in the last 60 seconds).",
        )
        .with_headers(&[
            DocumentedHeader::new::<u64>(
                "Retry-After",
                Some("Seconds until the next request will be admitted."),
            ),
            DocumentedHeader::new::<Option<u32>>(
                "X-RateLimit-Limit",
                Some("Requests allowed per minute for this token (when its quota is what is used up)."),
            ),
            DocumentedHeader::new::<Option<u32>>(
                "X-RateLimit-Remaining",
                Some(
                    "Requests this token may still make in the current 60-second window (a \
                     sliding window): 0 (when the token's quota is what is used up).",
                ),
            ),
        ]),
    ] + SERVER_FAULTS
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
        transform = "admission"
    )]
    async fn push_telemetry(
        &self,
        state: Data<&AppState>,
        auth: AgentToken,
        /// The snapshot. It may be sent gzip-compressed with `Content-Encoding: gzip` (the
        /// size limit applies to the compressed and to the inflated body).
        body: TelemetryBody,
    ) -> Result<IngestResponse, OperationError<PushTelemetry>> {
        let AgentToken(admission) = auth;
        let TelemetryBody(accepted) = body;
        let started = std::time::Instant::now();
        let submission = Submission {
            host_id: admission.agent.host_id,
            token_id: admission.agent.token_id,
            snapshot: accepted.snapshot,
        };
        let written = match state.ingest_queue.ingest(submission).await {
            Ok(Outcome::Stored(written)) => written,
            Ok(Outcome::Refused) => {
                admission.report(IngestVerdict::Refused);
                return Err(Error::Unauthorized.into());
            }
            Err(error) => {
                admission.report(IngestVerdict::Failed);
                return Err(error.into());
            }
        };
        admission.report(IngestVerdict::Stamped {
            fleet_post_ages: written
                .post_ages_ms
                .iter()
                .map(|&ms| std::time::Duration::from_millis(ms.max(0) as u64))
                .collect(),
        });
        metrics::record_ingest(started.elapsed(), written.container_rows);
        Ok(IngestResponse::Stored(
            admission.quota.limit,
            admission.quota.remaining,
            report_dropped(admission.agent.host_id, &accepted.dropped),
        ))
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
