//! `/api/v1/webhooks`: endpoints that receive events, signed per Standard Webhooks, and their
//! deliveries (docs/alerts.md, "Webhooks").
//!
//! An endpoint's signing secret is in exactly two responses: the one that creates it and the
//! one that rotates it. A URL whose host is or resolves to an internal address is refused
//! unless the server runs with `--allow-private-webhooks`.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use super::{
    ADMIN_AUTHENTICATION, AdminToken, BODY_LATE, BODY_TOO_LARGE, ID_NOT_AN_INTEGER,
    NOT_APPLICATION_JSON, named_path_params,
};
use crate::api::body::json::ValidJson;
use crate::api::openapi::operation_errors::{
    BODY_NOT_JSON, DocumentedProblem, OperationError, SERVER_FAULTS, documented,
};
use crate::api::{ApiTags, AppState};
use crate::domain::host::Cursor;
use crate::domain::host::default_page_size;
use crate::error::Error;
use crate::store::events::EventKind;
use crate::store::webhooks::{
    DeliveryState, Webhook, WebhookChanges, WebhookDelivery, WebhookFormat,
};
use crate::webhooks::client::refusal;

#[derive(Default)]
pub struct WebhooksApi;

/// A webhook endpoint to create.
#[derive(Debug, Clone, Object, Deserialize, serde::Serialize)]
#[oai(example)]
pub struct NewWebhook {
    /// Where deliveries are posted: an `http` or `https` URL without credentials, whose host
    /// is not and does not resolve to a loopback, private, link-local, unspecified or multicast
    /// address (unless the server runs with `--allow-private-webhooks`).
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: String,
    /// The event kinds to deliver; absent or empty: every kind, including kinds added later.
    #[oai(validator(max_items = 32))]
    pub event_kinds: Option<Vec<EventKind>>,
    /// How the body is written (default `json`).
    #[oai(skip_serializing_if_is_none)]
    pub format: Option<WebhookFormat>,
    /// Whether deliveries are made (default true).
    pub enabled: Option<bool>,
}

impl poem_openapi::types::Example for NewWebhook {
    fn example() -> Self {
        Self {
            url: "https://hooks.example.com/nexus".into(),
            event_kinds: Some(vec![EventKind::StateChanged, EventKind::AlertFiring]),
            // Left out: the document's checks read any `format` key as a schema format.
            format: None,
            enabled: Some(true),
        }
    }
}

/// Changes to a webhook endpoint; absent fields stay as they are.
#[derive(Debug, Clone, Object, Deserialize, serde::Serialize)]
pub struct WebhookUpdate {
    /// New URL, checked as on creation.
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: Option<String>,
    /// New event kinds, replacing the current ones (empty: every kind).
    #[oai(validator(max_items = 32))]
    pub event_kinds: Option<Vec<EventKind>>,
    /// New body format.
    pub format: Option<WebhookFormat>,
    /// Enable or disable deliveries.
    pub enabled: Option<bool>,
}

/// An endpoint with its signing secret, shown this once.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct WebhookWithSecret {
    #[oai(flatten)]
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret (`whsec_` + base64), for the receiver's Standard Webhooks library.
    /// Shown in this response only; it is kept in the server's database to sign deliveries.
    pub secret: String,
}

/// One page of an endpoint's deliveries, newest first.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct WebhookDeliveryPage {
    pub items: Vec<WebhookDelivery>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// Answer of `POST /api/v1/webhooks`.
#[derive(ApiResponse)]
pub enum CreateWebhookResponse {
    /// The endpoint, with its secret shown this once. It receives events written from now on.
    #[oai(status = 201)]
    Created(Json<WebhookWithSecret>),
}

documented! {
    /// What `POST /api/v1/webhooks` answers when it creates nothing.
    pub CreateWebhook: [
        BODY_NOT_JSON,
        BODY_LATE,
        BODY_TOO_LARGE,
        NOT_APPLICATION_JSON,
        DocumentedProblem::new(
            422,
            "The body breaks the schema, or the URL is refused (not http(s), or an internal\n\
             address; the message says why); `errors` names every failing field.",
        ),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `GET /api/v1/webhooks`.
#[derive(ApiResponse)]
pub enum ListWebhooksResponse {
    /// Every endpoint, by id.
    #[oai(status = 200)]
    Ok(Json<Vec<Webhook>>),
}

documented! {
    /// What `GET /api/v1/webhooks` answers otherwise.
    pub ListWebhooks: [] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// 404 of the operations on one endpoint.
const NO_SUCH_WEBHOOK: DocumentedProblem =
    DocumentedProblem::new(404, "No webhook endpoint has this id.");

/// Answer of `GET` and `PATCH /api/v1/webhooks/{id}`.
#[derive(ApiResponse)]
pub enum WebhookResponse {
    /// The endpoint.
    #[oai(status = 200)]
    Ok(Json<Webhook>),
}

documented! {
    /// What the operations on one endpoint that take no body answer otherwise.
    pub OneWebhook: [NO_SUCH_WEBHOOK, ID_NOT_AN_INTEGER] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

documented! {
    /// What `PATCH /api/v1/webhooks/{id}` answers when it changes nothing.
    pub UpdateWebhook: [
        BODY_NOT_JSON,
        BODY_LATE,
        NO_SUCH_WEBHOOK,
        BODY_TOO_LARGE,
        NOT_APPLICATION_JSON,
        DocumentedProblem::new(
            422,
            "The id is not an integer, the body breaks the schema, or the URL is refused;\n\
             `errors` names every failing field.",
        ),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `DELETE /api/v1/webhooks/{id}`.
#[derive(ApiResponse)]
pub enum DeleteWebhookResponse {
    /// Deleted, with its deliveries (pending ones are never sent).
    #[oai(status = 204)]
    Deleted,
}

/// Answer of `POST /api/v1/webhooks/{id}/rotate-secret`.
#[derive(ApiResponse)]
pub enum RotateWebhookSecretResponse {
    /// The endpoint with its new secret, shown this once; attempts from now on are signed with
    /// it (pending retries too).
    #[oai(status = 200)]
    Ok(Json<WebhookWithSecret>),
}

/// Answer of `GET /api/v1/webhooks/{id}/deliveries`.
#[derive(ApiResponse)]
pub enum ListDeliveriesResponse {
    /// A page of deliveries.
    #[oai(status = 200)]
    Ok(Json<WebhookDeliveryPage>),
}

documented! {
    /// What `GET /api/v1/webhooks/{id}/deliveries` answers otherwise.
    pub ListDeliveries: [
        NO_SUCH_WEBHOOK,
        DocumentedProblem::new(
            422,
            "The id is not an integer, or a malformed state, limit or cursor; `errors` names it.",
        ),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver`.
#[derive(ApiResponse)]
pub enum RedeliverResponse {
    /// The delivery, pending again and due now, with the same `webhook_id`.
    #[oai(status = 202)]
    Accepted(Json<WebhookDelivery>),
}

documented! {
    /// What `POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver` answers otherwise.
    pub Redeliver: [
        DocumentedProblem::new(404, "No such endpoint, or the delivery is not one of its."),
        DocumentedProblem::new(409, "The delivery is pending already."),
        DocumentedProblem::new(422, "An id is not an integer."),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// The URL, refused with a 422 naming `url` when it may not be an endpoint's.
async fn checked_url(state: &AppState, url: String) -> Result<String, Error> {
    match refusal(&url, state.webhooks.allow_private).await {
        Some(reason) => Err(Error::invalid("url", reason)),
        None => Ok(url),
    }
}

/// The kinds once each, in the order given.
fn distinct(kinds: Vec<EventKind>) -> Vec<EventKind> {
    let mut seen = Vec::with_capacity(kinds.len());
    for kind in kinds {
        if !seen.contains(&kind) {
            seen.push(kind);
        }
    }
    seen
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Admin")]
impl WebhooksApi {
    /// Create a webhook endpoint
    ///
    /// Events of the chosen kinds written from now on are posted to the URL, signed per the
    /// Standard Webhooks specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`)
    /// with the secret in this response, which is not shown again. The bodies are described
    /// under `x-webhooks`.
    #[oai(path = "/webhooks", method = "post", operation_id = "create_webhook")]
    async fn create_webhook(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        body: ValidJson<NewWebhook>,
    ) -> Result<CreateWebhookResponse, OperationError<CreateWebhook>> {
        let NewWebhook {
            url,
            event_kinds,
            format,
            enabled,
        } = body.0;
        let url = checked_url(&state, url).await?;
        let (webhook, secret) = state
            .store
            .create_webhook(
                &url,
                &distinct(event_kinds.unwrap_or_default()),
                format.unwrap_or(WebhookFormat::Json),
                enabled.unwrap_or(true),
            )
            .await?;
        Ok(CreateWebhookResponse::Created(Json(WebhookWithSecret {
            webhook,
            secret,
        })))
    }

    /// List webhook endpoints
    ///
    /// Every endpoint, by id; never a secret.
    #[oai(path = "/webhooks", method = "get", operation_id = "list_webhooks")]
    async fn list_webhooks(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
    ) -> Result<ListWebhooksResponse, OperationError<ListWebhooks>> {
        Ok(ListWebhooksResponse::Ok(Json(
            state.store.list_webhooks().await?,
        )))
    }

    /// Show a webhook endpoint
    ///
    /// Its URL, event kinds, format and whether it is enabled; never its secret.
    #[oai(
        path = "/webhooks/:id",
        method = "get",
        transform = "named_path_params",
        operation_id = "get_webhook"
    )]
    async fn get_webhook(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The endpoint's id.
        id: Path<i64>,
    ) -> Result<WebhookResponse, OperationError<OneWebhook>> {
        Ok(WebhookResponse::Ok(Json(state.store.webhook(id.0).await?)))
    }

    /// Update a webhook endpoint
    ///
    /// Changes its URL, event kinds or format, or enables or disables it; absent fields stay
    /// as they are. While disabled, new events are not queued for it and queued deliveries
    /// wait.
    #[oai(
        path = "/webhooks/:id",
        method = "patch",
        transform = "named_path_params",
        operation_id = "update_webhook"
    )]
    async fn update_webhook(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The endpoint's id.
        id: Path<i64>,
        body: ValidJson<WebhookUpdate>,
    ) -> Result<WebhookResponse, OperationError<UpdateWebhook>> {
        let WebhookUpdate {
            url,
            event_kinds,
            format,
            enabled,
        } = body.0;
        let url = match url {
            Some(url) => Some(checked_url(&state, url).await?),
            None => None,
        };
        let changes = WebhookChanges {
            url,
            event_kinds: event_kinds.map(distinct),
            format,
            enabled,
        };
        Ok(WebhookResponse::Ok(Json(
            state.store.update_webhook(id.0, &changes).await?,
        )))
    }

    /// Delete a webhook endpoint
    ///
    /// With its deliveries; pending ones are never sent.
    #[oai(
        path = "/webhooks/:id",
        method = "delete",
        transform = "named_path_params",
        operation_id = "delete_webhook"
    )]
    async fn delete_webhook(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The endpoint's id.
        id: Path<i64>,
    ) -> Result<DeleteWebhookResponse, OperationError<OneWebhook>> {
        state.store.delete_webhook(id.0).await?;
        Ok(DeleteWebhookResponse::Deleted)
    }

    /// Rotate a webhook endpoint's secret
    ///
    /// Replaces the signing secret; the response shows the new one, this once.
    #[oai(
        path = "/webhooks/:id/rotate-secret",
        method = "post",
        transform = "named_path_params",
        operation_id = "rotate_webhook_secret"
    )]
    async fn rotate_webhook_secret(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The endpoint's id.
        id: Path<i64>,
    ) -> Result<RotateWebhookSecretResponse, OperationError<OneWebhook>> {
        let (webhook, secret) = state.store.rotate_webhook_secret(id.0).await?;
        Ok(RotateWebhookSecretResponse::Ok(Json(WebhookWithSecret {
            webhook,
            secret,
        })))
    }

    /// List a webhook endpoint's deliveries
    ///
    /// Newest first, with each one's state (`pending`, `delivered`, `failed`), attempts, next
    /// attempt, and the last attempt's status code and error. Paged by cursor.
    #[oai(
        path = "/webhooks/:id/deliveries",
        method = "get",
        transform = "named_path_params",
        operation_id = "list_webhook_deliveries"
    )]
    async fn list_webhook_deliveries(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The endpoint's id.
        id: Path<i64>,
        /// Only deliveries in this state.
        #[oai(name = "state")]
        state_filter: Query<Option<DeliveryState>>,
        /// Deliveries per page.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
        /// Where to continue: the `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<ListDeliveriesResponse, OperationError<ListDeliveries>> {
        let before = cursor
            .0
            .as_deref()
            .map(|text| Cursor::parse("cursor", text))
            .transpose()
            .map_err(|error| Error::Validation(vec![error]))?;
        let limit = i64::from(limit.0);
        let items = state
            .store
            .webhook_deliveries(id.0, state_filter.0, before.map(|c| c.0), limit)
            .await?;
        let next_cursor = (items.len() as i64 == limit)
            .then(|| items.last().map(|last| Cursor(last.id).encode()))
            .flatten();
        Ok(ListDeliveriesResponse::Ok(Json(WebhookDeliveryPage {
            items,
            next_cursor,
        })))
    }

    /// Redeliver a webhook delivery
    ///
    /// Puts a failed (or delivered) delivery back to pending, due now, with a fresh retry
    /// schedule and the same `webhook-id`, so a receiver that saw it before can tell.
    #[oai(
        path = "/webhooks/:id/deliveries/:delivery_id/redeliver",
        method = "post",
        transform = "named_path_params",
        operation_id = "redeliver_webhook_delivery"
    )]
    async fn redeliver_webhook_delivery(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The endpoint's id.
        id: Path<i64>,
        /// The delivery's id.
        delivery_id: Path<i64>,
    ) -> Result<RedeliverResponse, OperationError<Redeliver>> {
        Ok(RedeliverResponse::Accepted(Json(
            state.store.redeliver_webhook(id.0, delivery_id.0).await?,
        )))
    }
}
