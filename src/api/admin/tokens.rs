//! `/api/v1/hosts/{id}/tokens`: issue, list, rotate and revoke a host's agent tokens.
//!
//! A plaintext token is in exactly one response, the one that issues it; listings show
//! metadata only. A token id is only found under its own host.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;

use super::{AdminToken, admin_response, named_path_params};
use crate::api::json_body::ValidJson;
use crate::api::{ApiTags, AppState};
use crate::domain::payload::FastBody;
use crate::store::tokens::{AgentTokenInfo, IssuedToken};

pub struct TokensApi;

/// An agent token to issue.
#[derive(Debug, Clone, Object, Deserialize, serde::Serialize)]
pub struct NewAgentToken {
    /// Label to tell the host's tokens apart.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub name: String,
    /// Bind the token to the address and User-Agent of its first admitted request; later
    /// requests from another client get 401. Off by default; rotation keeps the option and
    /// starts unbound.
    #[oai(default)]
    #[serde(default)]
    pub bind_fingerprint: bool,
}

/// Small and rare: the `Value` path alone.
impl FastBody for NewAgentToken {}

/// A token just issued: the plaintext `token`, shown this once (only its SHA-256 is stored),
/// beside its metadata. Also the JSON of `nexus-telemetry token issue|rotate --json`.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct IssuedAgentToken {
    /// The token's id, used in its URLs.
    pub id: i64,
    /// The host the token authenticates.
    pub host_id: i64,
    /// Label to tell the host's tokens apart.
    pub name: String,
    /// When the token was issued.
    pub created_at: DateTime<Utc>,
    /// Whether the token binds to its first client's fingerprint.
    pub bind_fingerprint: bool,
    /// The bearer for `Authorization: Bearer …` (`nxa_` + 64 hex digits).
    pub token: String,
}

impl From<IssuedToken> for IssuedAgentToken {
    fn from(issued: IssuedToken) -> Self {
        Self {
            id: issued.id,
            host_id: issued.host_id,
            name: issued.name,
            created_at: issued.created_at,
            bind_fingerprint: issued.bind_fingerprint,
            token: issued.token.plaintext,
        }
    }
}

admin_response! {
    /// Answers of `POST /api/v1/hosts/{id}/tokens`.
    pub enum IssueTokenResponse {
        /// The token, with its plaintext shown this once.
        #[oai(status = 201)]
        Created(Json<IssuedAgentToken>),
    }
    problems {
        /// The body is not JSON (or is empty).
        BadRequest = 400,
        /// The body did not arrive within the configured time.
        RequestTimeout = 408,
        /// No host has this id.
        NotFound = 404,
        /// The host is archived.
        Conflict = 409,
        /// The body exceeds the configured limit.
        PayloadTooLarge = 413,
        /// The body is not `application/json`.
        UnsupportedMediaType = 415,
        /// The id is not an integer or the body breaks the schema; `errors` names every
        /// failing field.
        Unprocessable = 422,
    }
}

admin_response! {
    /// Answers of `GET /api/v1/hosts/{id}/tokens`.
    pub enum ListTokensResponse {
        /// Every token of the host, revoked ones too, oldest first.
        #[oai(status = 200)]
        Ok(Json<Vec<AgentTokenInfo>>),
    }
    problems {
        /// No host has this id.
        NotFound = 404,
        /// The id is not an integer.
        Unprocessable = 422,
    }
}

admin_response! {
    /// Answers of `POST /api/v1/hosts/{id}/tokens/{token_id}/rotate`.
    pub enum RotateTokenResponse {
        /// The replacement token, with its plaintext shown this once.
        #[oai(status = 201)]
        Created(Json<IssuedAgentToken>),
    }
    problems {
        /// No such host, or the token is not one of this host's.
        NotFound = 404,
        /// The token is already revoked.
        Conflict = 409,
        /// An id is not an integer.
        Unprocessable = 422,
    }
}

admin_response! {
    /// Answers of `DELETE /api/v1/hosts/{id}/tokens/{token_id}`.
    pub enum RevokeTokenResponse {
        /// Revoked (or already revoked).
        #[oai(status = 204)]
        Revoked,
    }
    problems {
        /// No such host, or the token is not one of this host's.
        NotFound = 404,
        /// An id is not an integer.
        Unprocessable = 422,
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Admin")]
impl TokensApi {
    /// Issue an agent token
    ///
    /// The response holds the plaintext token, this once; only its SHA-256 is stored.
    #[oai(
        path = "/hosts/:id/tokens",
        method = "post",
        transform = "named_path_params",
        operation_id = "issue_host_token"
    )]
    async fn issue_token(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
        body: ValidJson<NewAgentToken>,
    ) -> IssueTokenResponse {
        let request = body.0;
        match state
            .store
            .issue_agent_token(id.0, &request.name, request.bind_fingerprint)
            .await
        {
            Ok(issued) => IssueTokenResponse::Created(Json(issued.into())),
            Err(error) => error.into(),
        }
    }

    /// List a host's agent tokens
    ///
    /// Metadata only: never a plaintext, never a hash.
    #[oai(
        path = "/hosts/:id/tokens",
        method = "get",
        transform = "named_path_params",
        operation_id = "list_host_tokens"
    )]
    async fn list_tokens(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
    ) -> ListTokensResponse {
        match state.store.list_agent_tokens(id.0).await {
            Ok(tokens) => ListTokensResponse::Ok(Json(tokens)),
            Err(error) => error.into(),
        }
    }

    /// Rotate an agent token
    ///
    /// Revokes the token and issues its replacement (same name) atomically; the old token is
    /// refused from the next request on. The response holds the new plaintext, this once.
    #[oai(
        path = "/hosts/:id/tokens/:token_id/rotate",
        method = "post",
        transform = "named_path_params",
        operation_id = "rotate_host_token"
    )]
    async fn rotate_token(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
        /// The token's id.
        token_id: Path<i64>,
    ) -> RotateTokenResponse {
        match state.store.rotate_agent_token(id.0, token_id.0).await {
            Ok(issued) => RotateTokenResponse::Created(Json(issued.into())),
            Err(error) => error.into(),
        }
    }

    /// Revoke an agent token
    ///
    /// The token is refused from the next request on. Revoking a revoked token changes
    /// nothing.
    #[oai(
        path = "/hosts/:id/tokens/:token_id",
        method = "delete",
        transform = "named_path_params",
        operation_id = "revoke_host_token"
    )]
    async fn revoke_token(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
        /// The token's id.
        token_id: Path<i64>,
    ) -> RevokeTokenResponse {
        match state.store.revoke_agent_token(id.0, token_id.0).await {
            Ok(_) => RevokeTokenResponse::Revoked,
            Err(error) => error.into(),
        }
    }
}
