//! `/api/v1/hosts/{id}/tokens`: issue, list, rotate and revoke a host's agent tokens.
//!
//! A plaintext token is in exactly one response, the one that issues it; listings show
//! metadata only. A token id is only found under its own host.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::hosts::OneHost;
use super::{
    ADMIN_AUTHENTICATION, AdminToken, BODY_LATE, BODY_TOO_LARGE, ID_OR_BODY_INVALID, NO_SUCH_HOST,
    NOT_APPLICATION_JSON, named_path_params,
};
use crate::api::body::json::ValidJson;
use crate::api::openapi::operation_errors::{
    BODY_NOT_JSON, DocumentedProblem, OperationError, SERVER_FAULTS, documented,
};
use crate::api::{ApiTags, AppState};
use crate::domain::token::NewAgentToken;
use crate::store::tokens::{AgentTokenInfo, IssuedAgentToken};

#[derive(Default)]
pub struct TokensApi;

/// Answer of `POST /api/v1/hosts/{id}/tokens`.
#[derive(ApiResponse)]
pub enum IssueTokenResponse {
    /// The token, with its plaintext shown this once.
    #[oai(status = 201)]
    Created(Json<IssuedAgentToken>),
}

documented! {
    /// What `POST /api/v1/hosts/{id}/tokens` answers when it issues nothing.
    pub IssueToken: [
        BODY_NOT_JSON,
        BODY_LATE,
        NO_SUCH_HOST,
        DocumentedProblem::new(409, "The host is archived."),
        BODY_TOO_LARGE,
        NOT_APPLICATION_JSON,
        ID_OR_BODY_INVALID,
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `GET /api/v1/hosts/{id}/tokens`; [`OneHost`] lists the others.
#[derive(ApiResponse)]
pub enum ListTokensResponse {
    /// Every token of the host, revoked ones too, oldest first.
    #[oai(status = 200)]
    Ok(Json<Vec<AgentTokenInfo>>),
}

/// 404 of the operations on one token.
const NO_SUCH_TOKEN: DocumentedProblem =
    DocumentedProblem::new(404, "No such host, or the token is not one of this host's.");

/// 422 of the operations on one token.
const AN_ID_NOT_AN_INTEGER: DocumentedProblem =
    DocumentedProblem::new(422, "An id is not an integer.");

/// Answer of `POST /api/v1/hosts/{id}/tokens/{token_id}/rotate`.
#[derive(ApiResponse)]
pub enum RotateTokenResponse {
    /// The replacement token, with its plaintext shown this once.
    #[oai(status = 201)]
    Created(Json<IssuedAgentToken>),
}

documented! {
    /// What `POST /api/v1/hosts/{id}/tokens/{token_id}/rotate` answers when it rotates nothing.
    pub RotateToken: [
        NO_SUCH_TOKEN,
        DocumentedProblem::new(409, "The token is already revoked."),
        AN_ID_NOT_AN_INTEGER,
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `DELETE /api/v1/hosts/{id}/tokens/{token_id}`.
#[derive(ApiResponse)]
pub enum RevokeTokenResponse {
    /// Revoked (or already revoked).
    #[oai(status = 204)]
    Revoked,
}

documented! {
    /// What `DELETE /api/v1/hosts/{id}/tokens/{token_id}` answers when it revokes nothing.
    pub RevokeToken: [NO_SUCH_TOKEN, AN_ID_NOT_AN_INTEGER] + ADMIN_AUTHENTICATION + SERVER_FAULTS
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
    ) -> Result<IssueTokenResponse, OperationError<IssueToken>> {
        let request = body.0;
        let issued = state
            .store
            .issue_agent_token(id.0, &request.name, request.binds_fingerprint())
            .await?;
        Ok(IssueTokenResponse::Created(Json(issued.into())))
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
    ) -> Result<ListTokensResponse, OperationError<OneHost>> {
        let tokens = state.store.list_agent_tokens(id.0).await?;
        Ok(ListTokensResponse::Ok(Json(tokens)))
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
    ) -> Result<RotateTokenResponse, OperationError<RotateToken>> {
        let issued = state.store.rotate_agent_token(id.0, token_id.0).await?;
        Ok(RotateTokenResponse::Created(Json(issued.into())))
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
    ) -> Result<RevokeTokenResponse, OperationError<RevokeToken>> {
        state.store.revoke_agent_token(id.0, token_id.0).await?;
        Ok(RevokeTokenResponse::Revoked)
    }
}
