//! `/api/v1/alert-rules`: list, create, show, replace and delete the rules alerts come from.
//!
//! Bodies are checked by the rule's one definition ([`RuleDefinition::check`], shared with the
//! CLI), which names every failing field: schema bounds, closed sets, and parameters that do not
//! belong to the rule's kind.

use poem::web::Data;
use poem::{Request, RequestBody};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, OpenApi, impl_apirequest_for_payload};

use super::{
    ADMIN_AUTHENTICATION, AdminToken, BODY_LATE, BODY_TOO_LARGE, NOT_APPLICATION_JSON,
    named_path_params,
};
use crate::api::body::json::{ValidJson, value_of};
use crate::api::body::read::{BodyLimits, read_body};
use crate::api::openapi::operation_errors::{
    BODY_NOT_JSON, DocumentedProblem, OperationError, SERVER_FAULTS, documented,
};
use crate::api::{ApiTags, AppState};
use crate::domain::alert_rule::{RuleDefinition, ValidRule};
use crate::domain::host::{Cursor, default_page_size, page_cursor};
use crate::error::Error;
use crate::store::alert_rules::{AlertRule, AlertRulePage};

#[derive(Default)]
pub struct AlertRulesApi;

/// A rule body, checked by [`RuleDefinition::check`]; documented as a [`RuleDefinition`].
pub struct RuleBody(pub ValidRule);

impl Payload for RuleBody {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        <ValidJson<RuleDefinition> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        RuleDefinition::schema_ref()
    }

    fn register(registry: &mut Registry) {
        RuleDefinition::register(registry);
    }
}

impl ParsePayload for RuleBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limits = *request
            .data::<BodyLimits>()
            .expect("BodyLimits is app data");
        let value = value_of(&read_body(request, body, limits).await?)?;
        Ok(Self(
            RuleDefinition::check(&value).map_err(Error::Validation)?,
        ))
    }
}

impl_apirequest_for_payload!(RuleBody);

/// 404 of the operations on one rule.
const NO_SUCH_RULE: DocumentedProblem = DocumentedProblem::new(404, "No alert rule has this id.");

/// 409 of the operations that write a rule.
const NAME_TAKEN: DocumentedProblem =
    DocumentedProblem::new(409, "Another alert rule has this name.");

/// Answer of `GET /api/v1/alert-rules`.
#[derive(ApiResponse)]
pub enum ListAlertRulesResponse {
    /// A page of rules.
    #[oai(status = 200)]
    Ok(Json<AlertRulePage>),
}

documented! {
    /// What `GET /api/v1/alert-rules` answers when it lists nothing.
    pub ListAlertRules: [
        DocumentedProblem::new(422, "A malformed limit or cursor; `errors` names it."),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `POST /api/v1/alert-rules`.
#[derive(ApiResponse)]
pub enum CreateAlertRuleResponse {
    /// The rule, created; `Location` is its URL.
    #[oai(status = 201)]
    Created(Json<AlertRule>, #[oai(header = "Location")] String),
}

documented! {
    /// What `POST /api/v1/alert-rules` answers when it creates nothing.
    pub CreateAlertRule: [
        BODY_NOT_JSON,
        BODY_LATE,
        NAME_TAKEN,
        BODY_TOO_LARGE,
        NOT_APPLICATION_JSON,
        DocumentedProblem::new(
            422,
            "The body breaks the schema, or sets parameters its kind does not take or lacks\n\
             ones it requires; `errors` names every failing field.",
        ),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of the operations that show or replace one rule.
#[derive(ApiResponse)]
pub enum AlertRuleResponse {
    /// The rule.
    #[oai(status = 200)]
    Ok(Json<AlertRule>),
}

documented! {
    /// What `GET /api/v1/alert-rules/{alert_rule_id}` answers otherwise.
    pub OneAlertRule: [
        NO_SUCH_RULE,
        DocumentedProblem::new(422, "The id is not an integer."),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

documented! {
    /// What `PUT /api/v1/alert-rules/{alert_rule_id}` answers when it changes nothing.
    pub ReplaceAlertRule: [
        BODY_NOT_JSON,
        NO_SUCH_RULE,
        BODY_LATE,
        NAME_TAKEN,
        BODY_TOO_LARGE,
        NOT_APPLICATION_JSON,
        DocumentedProblem::new(
            422,
            "The id is not an integer, or the body breaks the schema, sets parameters its kind\n\
             does not take or lacks ones it requires; `errors` names every failing field.",
        ),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `DELETE /api/v1/alert-rules/{alert_rule_id}`.
#[derive(ApiResponse)]
pub enum DeleteAlertRuleResponse {
    /// Deleted, with its alerts.
    #[oai(status = 204)]
    Deleted,
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Admin")]
impl AlertRulesApi {
    /// List alert rules
    ///
    /// Ordered by id and paged by cursor like the other listings. A fresh install has four:
    /// `host offline`, `container not running`, `container restarting` and
    /// `disk almost full`.
    #[oai(
        path = "/alert-rules",
        method = "get",
        operation_id = "list_alert_rules"
    )]
    async fn list_alert_rules(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// Rules per page.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
        /// Where to continue: the `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<ListAlertRulesResponse, OperationError<ListAlertRules>> {
        let after = page_cursor(cursor.0.as_deref())?;
        let page = state
            .reads
            .run(|store| store.list_alert_rules(after, limit.0))
            .await?;
        Ok(ListAlertRulesResponse::Ok(Json(AlertRulePage {
            items: page.items,
            next_cursor: page.next.map(Cursor::encode),
        })))
    }

    /// Create an alert rule
    ///
    /// A kind, its parameters, a scope (host ids and/or a label selector; every host when
    /// neither), a `for` duration in seconds, a severity and a summary. Parameters of another
    /// kind are refused by name, as are missing ones the kind requires.
    #[oai(
        path = "/alert-rules",
        method = "post",
        operation_id = "create_alert_rule"
    )]
    async fn create_alert_rule(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        body: RuleBody,
    ) -> Result<CreateAlertRuleResponse, OperationError<CreateAlertRule>> {
        let rule = state.store.create_alert_rule(&body.0).await?;
        let location = format!("/api/v1/alert-rules/{}", rule.id);
        Ok(CreateAlertRuleResponse::Created(Json(rule), location))
    }

    /// Show an alert rule
    ///
    /// The rule with its kind's parameters (null for the parameters of other kinds).
    #[oai(
        path = "/alert-rules/:alert_rule_id",
        method = "get",
        transform = "named_path_params",
        operation_id = "get_alert_rule"
    )]
    async fn get_alert_rule(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The rule's id.
        alert_rule_id: Path<i64>,
    ) -> Result<AlertRuleResponse, OperationError<OneAlertRule>> {
        Ok(AlertRuleResponse::Ok(Json(
            state.store.alert_rule(alert_rule_id.0).await?,
        )))
    }

    /// Update an alert rule
    ///
    /// The body is a whole rule, as for creating one: fields left out take their defaults.
    /// The rule's open alerts stay open; the next evaluation judges them by the new rule.
    #[oai(
        path = "/alert-rules/:alert_rule_id",
        method = "put",
        transform = "named_path_params",
        operation_id = "update_alert_rule"
    )]
    async fn update_alert_rule(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The rule's id.
        alert_rule_id: Path<i64>,
        body: RuleBody,
    ) -> Result<AlertRuleResponse, OperationError<ReplaceAlertRule>> {
        Ok(AlertRuleResponse::Ok(Json(
            state
                .store
                .replace_alert_rule(alert_rule_id.0, &body.0)
                .await?,
        )))
    }

    /// Delete an alert rule
    ///
    /// Its alerts go with it; the events they wrote stay in the feed. To stop a rule without
    /// losing its history, set `enabled` to false instead.
    #[oai(
        path = "/alert-rules/:alert_rule_id",
        method = "delete",
        transform = "named_path_params",
        operation_id = "delete_alert_rule"
    )]
    async fn delete_alert_rule(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The rule's id.
        alert_rule_id: Path<i64>,
    ) -> Result<DeleteAlertRuleResponse, OperationError<OneAlertRule>> {
        state.store.delete_alert_rule(alert_rule_id.0).await?;
        Ok(DeleteAlertRuleResponse::Deleted)
    }
}
