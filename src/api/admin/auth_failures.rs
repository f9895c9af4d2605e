//! `GET /api/v1/auth-failures`: refused agent requests of the last hour, by client address and
//! reason, as this server process counted them (see [`crate::api::auth_failures`]).

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ADMIN_AUTHENTICATION, AdminToken};
use crate::api::ingest::auth_failures::FailureSummary;
use crate::api::openapi::operation_errors::{OperationError, SERVER_FAULTS, documented};
use crate::api::{ApiTags, AppState};

#[derive(Default)]
pub struct AuthFailuresApi;

/// Refused agent requests of the last hour.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct AuthFailureReport {
    /// Start of the period covered (the minute an hour before `until`).
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// One line per client address and reason, most frequent first.
    pub items: Vec<FailureSummary>,
    /// Failures counted but not broken down by address (past 10,000 address–reason pairs).
    pub untallied: u64,
}

/// Answer of `GET /api/v1/auth-failures`.
#[derive(ApiResponse)]
pub enum AuthFailuresResponse {
    /// The last hour's refused agent requests, by address and reason.
    #[oai(status = 200)]
    Ok(Json<AuthFailureReport>),
}

documented! {
    /// What `GET /api/v1/auth-failures` answers otherwise.
    pub ListAuthFailures: [] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Admin")]
impl AuthFailuresApi {
    /// Summarise refused agent requests
    ///
    /// The last hour's refused requests to `POST /agent/telemetry` (missing, invalid, revoked,
    /// archived, rate limited, fingerprint mismatch) by client address and reason, as counted
    /// by the server process that answers (each process counts its own).
    #[oai(
        path = "/auth-failures",
        method = "get",
        operation_id = "list_auth_failures"
    )]
    async fn list_auth_failures(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
    ) -> Result<AuthFailuresResponse, OperationError<ListAuthFailures>> {
        let until = Utc::now();
        let (items, untallied) = state.auth_failure_log.summary(until);
        let minute = until.timestamp().div_euclid(60) - 59;
        let since = DateTime::from_timestamp(minute * 60, 0).unwrap_or(until);
        Ok(AuthFailuresResponse::Ok(Json(AuthFailureReport {
            since,
            until,
            items,
            untallied,
        })))
    }
}
