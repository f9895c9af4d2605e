//! `/api/v1/alerts`: what is open now, the history, one alert, and acknowledging or silencing
//! one. The evaluator opens, fires and resolves alerts; people only read and annotate them.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{
    ADMIN_AUTHENTICATION, AdminToken, BODY_LATE, BODY_TOO_LARGE, NOT_APPLICATION_JSON,
    named_path_params,
};
use crate::api::body::json::ValidJson;
use crate::api::openapi::operation_errors::{
    BODY_NOT_JSON, DocumentedProblem, OperationError, SERVER_FAULTS, documented,
};
use crate::api::{ApiTags, AppState};
use crate::domain::host::{Cursor, default_page_size};
use crate::store::admin_tokens::AdminSession;
use crate::store::alerts::{Alert, AlertPage, AlertState, alert_filter};

#[derive(Default)]
pub struct AlertsApi;

/// Until when an alert's notifications are held back.
#[derive(Debug, Clone, Object, serde::Deserialize, serde::Serialize)]
#[oai(example)]
pub struct Silence {
    /// The end of the silence (RFC 3339). Absent, null or a time already past: the alert is
    /// not silenced (an existing silence is cleared).
    #[oai(nullable)]
    pub until: Option<DateTime<Utc>>,
}

impl poem_openapi::types::Example for Silence {
    fn example() -> Self {
        Self {
            until: DateTime::parse_from_rfc3339("2026-12-07T18:00:00Z")
                .ok()
                .map(|at| at.with_timezone(&Utc)),
        }
    }
}

const NO_SUCH_ALERT: DocumentedProblem = DocumentedProblem::new(404, "No alert has this id.");

const RESOLVED: DocumentedProblem = DocumentedProblem::new(
    409,
    "The alert is resolved; only pending and firing alerts can be acknowledged or silenced.",
);

/// Answer of `GET /api/v1/alerts`.
#[derive(ApiResponse)]
pub enum ListAlertsResponse {
    /// A page of alerts.
    #[oai(status = 200)]
    Ok(Json<AlertPage>),
}

documented! {
    /// What `GET /api/v1/alerts` answers when it lists nothing.
    pub ListAlerts: [
        DocumentedProblem::new(422, "A malformed filter, limit or cursor; `errors` names each."),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of the operations on one alert.
#[derive(ApiResponse)]
pub enum AlertResponse {
    /// The alert.
    #[oai(status = 200)]
    Ok(Json<Alert>),
}

documented! {
    /// What `GET /api/v1/alerts/{alert_id}` answers otherwise.
    pub OneAlert: [
        NO_SUCH_ALERT,
        DocumentedProblem::new(422, "The id is not an integer."),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

documented! {
    /// What `POST /api/v1/alerts/{alert_id}/acknowledge` answers otherwise.
    pub AcknowledgeAlert: [
        NO_SUCH_ALERT,
        RESOLVED,
        DocumentedProblem::new(422, "The id is not an integer."),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

documented! {
    /// What `POST /api/v1/alerts/{alert_id}/silence` answers when it changes nothing.
    pub SilenceAlert: [
        BODY_NOT_JSON,
        NO_SUCH_ALERT,
        BODY_LATE,
        RESOLVED,
        BODY_TOO_LARGE,
        NOT_APPLICATION_JSON,
        DocumentedProblem::new(
            422,
            "The id is not an integer or the body breaks the schema; `errors` names every\n\
             failing field.",
        ),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Who acknowledges, as `acknowledged_by` records it: the admin token's name and id.
pub fn acknowledger(session: &AdminSession) -> String {
    format!("{} (admin token {})", session.name, session.token_id)
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Admin")]
impl AlertsApi {
    /// List alerts
    ///
    /// What is open now (`pending` and `firing`) unless `state` or `history` says otherwise;
    /// `history=true` lists the resolved ones. Newest (largest id) first, paged by cursor.
    #[oai(path = "/alerts", method = "get", operation_id = "list_alerts")]
    #[expect(
        clippy::too_many_arguments,
        reason = "each query parameter is an argument, so the document lists it"
    )]
    async fn list_alerts(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// Only alerts in these states; repeat for several (default: `pending` and `firing`).
        #[oai(name = "state", default)]
        states: Query<Vec<AlertState>>,
        /// Only resolved alerts: the history (not together with `state`).
        #[oai(default)]
        history: Query<bool>,
        /// Only alerts of this rule.
        rule_id: Query<Option<i64>>,
        /// Only alerts about this host (its id).
        host_id: Query<Option<i64>>,
        /// Only alerts about this container (Docker's id).
        #[oai(validator(max_length = 80))]
        container_id: Query<Option<String>>,
        /// Alerts per page.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
        /// Where to continue: the `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<ListAlertsResponse, OperationError<ListAlerts>> {
        let filter = alert_filter(
            states.0,
            history.0,
            rule_id.0,
            host_id.0,
            container_id.0,
            cursor.0.as_deref(),
            limit.0,
        )?;
        let page = state.reads.run(|store| store.list_alerts(&filter)).await?;
        Ok(ListAlertsResponse::Ok(Json(AlertPage {
            items: page.items,
            next_cursor: page.next.map(Cursor::encode),
        })))
    }

    /// Show an alert
    ///
    /// The alert with its rule, subject, state and what people did to it.
    #[oai(
        path = "/alerts/:alert_id",
        method = "get",
        transform = "named_path_params",
        operation_id = "get_alert"
    )]
    async fn get_alert(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The alert's id.
        alert_id: Path<i64>,
    ) -> Result<AlertResponse, OperationError<OneAlert>> {
        Ok(AlertResponse::Ok(Json(
            state.store.alert(alert_id.0).await?,
        )))
    }

    /// Acknowledge an alert
    ///
    /// Records `acknowledged_at` and `acknowledged_by` (the admin token's name and id) and
    /// writes one `alert_acknowledged` event (its `from_value` and `to_value` are the alert's
    /// state) in the same transaction. Acknowledging an acknowledged alert changes nothing and
    /// writes no event.
    #[oai(
        path = "/alerts/:alert_id/acknowledge",
        method = "post",
        transform = "named_path_params",
        operation_id = "acknowledge_alert"
    )]
    async fn acknowledge_alert(
        &self,
        state: Data<&AppState>,
        auth: AdminToken,
        /// The alert's id.
        alert_id: Path<i64>,
    ) -> Result<AlertResponse, OperationError<AcknowledgeAlert>> {
        let by = acknowledger(&auth.0);
        Ok(AlertResponse::Ok(Json(
            state.store.acknowledge_alert(alert_id.0, &by).await?,
        )))
    }

    /// Silence an alert
    ///
    /// Holds back the alert's notifications until `until`; `until` absent, null or already
    /// past clears the silence. Meanwhile webhooks skip the alert's events and each
    /// Alertmanager holds a matching silence; what is held back is dropped, not sent when the
    /// silence ends (docs/alerts.md). The alert itself goes on firing and resolving, and its
    /// events stay in the feed.
    #[oai(
        path = "/alerts/:alert_id/silence",
        method = "post",
        transform = "named_path_params",
        operation_id = "silence_alert"
    )]
    async fn silence_alert(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The alert's id.
        alert_id: Path<i64>,
        body: ValidJson<Silence>,
    ) -> Result<AlertResponse, OperationError<SilenceAlert>> {
        Ok(AlertResponse::Ok(Json(
            state.store.silence_alert(alert_id.0, body.0.until).await?,
        )))
    }
}
