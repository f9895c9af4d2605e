//! `/api/v1/hosts`: create, list, show, update and archive monitored hosts.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::{
    ADMIN_AUTHENTICATION, AdminToken, BODY_LATE, BODY_TOO_LARGE, ID_NOT_AN_INTEGER,
    ID_OR_BODY_INVALID, NO_SUCH_HOST, NOT_APPLICATION_JSON, named_path_params,
};
use crate::api::body::json::ValidJson;
use crate::api::openapi::operation_errors::{
    BODY_NOT_JSON, DocumentedProblem, OperationError, SERVER_FAULTS, documented,
};
use crate::api::{ApiTags, AppState};
use crate::domain::host::{Cursor, HostStatus, HostUpdate, NewHost, default_page_size};
use crate::store::hosts::{Host, HostPage, host_filter, slugify};

#[derive(Default)]
pub struct HostsApi;

/// Answer of `POST /api/v1/hosts`.
#[derive(ApiResponse)]
pub enum CreateHostResponse {
    /// The host, created in status `pending`.
    #[oai(status = 201)]
    Created(Json<Host>),
}

documented! {
    /// What `POST /api/v1/hosts` answers when it creates nothing.
    pub CreateHost: [
        BODY_NOT_JSON,
        BODY_LATE,
        DocumentedProblem::new(409, "A host with this slug already exists."),
        BODY_TOO_LARGE,
        NOT_APPLICATION_JSON,
        DocumentedProblem::new(
            422,
            "The body breaks the schema; `errors` names every failing field.",
        ),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `GET /api/v1/hosts`.
#[derive(ApiResponse)]
pub enum ListHostsResponse {
    /// A page of hosts.
    #[oai(status = 200)]
    Ok(Json<HostPage>),
}

documented! {
    /// What `GET /api/v1/hosts` answers when it lists nothing.
    pub ListHosts: [
        DocumentedProblem::new(422, "A malformed filter, limit or cursor; `errors` names it."),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of the operations on one host that take no body.
#[derive(ApiResponse)]
pub enum HostResponse {
    /// The host.
    #[oai(status = 200)]
    Ok(Json<Host>),
}

documented! {
    /// What the operations on one host (or its tokens) that take no body answer otherwise.
    pub OneHost: [NO_SUCH_HOST, ID_NOT_AN_INTEGER] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `PATCH /api/v1/hosts/{id}`.
#[derive(ApiResponse)]
pub enum UpdateHostResponse {
    /// The updated host.
    #[oai(status = 200)]
    Ok(Json<Host>),
}

documented! {
    /// What `PATCH /api/v1/hosts/{id}` answers when it changes nothing.
    pub UpdateHost: [
        BODY_NOT_JSON,
        BODY_LATE,
        NO_SUCH_HOST,
        BODY_TOO_LARGE,
        NOT_APPLICATION_JSON,
        ID_OR_BODY_INVALID,
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Admin")]
impl HostsApi {
    /// Create a host
    ///
    /// The host starts in status `pending` and turns `online` with its first snapshot. Issue it
    /// a token with `POST /api/v1/hosts/{id}/tokens`.
    #[oai(path = "/hosts", method = "post", operation_id = "create_host")]
    async fn create_host(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        body: ValidJson<NewHost>,
    ) -> Result<CreateHostResponse, OperationError<CreateHost>> {
        let NewHost { name, slug, labels } = body.0;
        let slug = slug.unwrap_or_else(|| slugify(&name));
        let host = state
            .store
            .create_host_with_labels(&name, &slug, &labels.unwrap_or_default())
            .await?;
        Ok(CreateHostResponse::Created(Json(host)))
    }

    /// List hosts
    ///
    /// Ordered by id and paged by cursor: pass the `next_cursor` of a page as `cursor` to get
    /// the next one. Hosts created while paging appear on later pages; none is repeated or
    /// skipped.
    #[oai(path = "/hosts", method = "get", operation_id = "list_hosts")]
    #[expect(
        clippy::too_many_arguments,
        reason = "each query parameter is an argument, so the document lists it"
    )]
    async fn list_hosts(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// Only hosts in this status.
        status: Query<Option<HostStatus>>,
        /// Only hosts carrying this label, written `key:value`; repeat to require several.
        #[oai(default)]
        label: Query<Vec<String>>,
        /// Only hosts whose name contains this text (case-insensitive).
        name: Query<Option<String>>,
        /// Hosts per page.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
        /// Where to continue: the `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<ListHostsResponse, OperationError<ListHosts>> {
        let filter = host_filter(
            status.0,
            &label.0,
            name.0.as_deref(),
            cursor.0.as_deref(),
            limit.0,
        )?;
        let page = state.reads.run(|store| store.list_hosts(&filter)).await?;
        Ok(ListHostsResponse::Ok(Json(HostPage {
            items: page.items,
            next_cursor: page.next.map(Cursor::encode),
        })))
    }

    /// Show a host
    ///
    /// The host with its status, labels and the facts its agent reported.
    #[oai(
        path = "/hosts/:id",
        method = "get",
        transform = "named_path_params",
        operation_id = "get_host"
    )]
    async fn get_host(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
    ) -> Result<HostResponse, OperationError<OneHost>> {
        Ok(HostResponse::Ok(Json(state.store.host(id.0).await?)))
    }

    /// Update a host
    ///
    /// Renames it and/or replaces its labels; absent fields stay as they are.
    #[oai(
        path = "/hosts/:id",
        method = "patch",
        transform = "named_path_params",
        operation_id = "update_host"
    )]
    async fn update_host(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
        body: ValidJson<HostUpdate>,
    ) -> Result<UpdateHostResponse, OperationError<UpdateHost>> {
        let HostUpdate { name, labels } = body.0;
        let host = state
            .store
            .update_host(id.0, name.as_deref(), labels.as_ref())
            .await?;
        Ok(UpdateHostResponse::Ok(Json(host)))
    }

    /// Archive a host
    ///
    /// Sets status `archived` and `archived_at`, and revokes every active token of the host,
    /// in one transaction: its agent is refused from the next request on. Archiving an
    /// archived host changes nothing (the first `archived_at` stays).
    #[oai(
        path = "/hosts/:id/archive",
        method = "post",
        transform = "named_path_params",
        operation_id = "archive_host"
    )]
    async fn archive_host(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
    ) -> Result<HostResponse, OperationError<OneHost>> {
        Ok(HostResponse::Ok(Json(
            state.store.archive_host(id.0).await?,
        )))
    }
}
