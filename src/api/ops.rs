//! Operator endpoints: liveness, readiness and Prometheus metrics.

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::problem::{Problem, ProblemJson};
use super::{ApiTags, AppState, metrics};
use crate::error::{Error, UNAVAILABLE_RETRY_AFTER_SECS};
use crate::store::Readiness;

pub struct OpsApi;

#[derive(Object)]
struct Health {
    /// `ok` or `ready`.
    status: String,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The database is reachable and every migration is applied.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// Not ready: the database is unreachable or migrations are pending.
    #[oai(status = 503)]
    NotReady(ProblemJson, #[oai(header = "Retry-After")] u64),
}

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness: the process serves requests
    #[oai(path = "/healthz", method = "get", operation_id = "get_health")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness: the database is reachable and migrations are current
    #[oai(path = "/readyz", method = "get", operation_id = "get_readiness")]
    async fn ready(&self, state: Data<&AppState>) -> ReadyResponse {
        let not_ready = |detail: String| {
            let problem = Problem::new(
                poem::http::StatusCode::SERVICE_UNAVAILABLE,
                detail,
                Vec::new(),
            );
            ReadyResponse::NotReady(ProblemJson(problem), UNAVAILABLE_RETRY_AFTER_SECS)
        };
        match state.store.readiness().await {
            Ok(Readiness::Ready) => ReadyResponse::Ready(Json(Health {
                status: "ready".into(),
            })),
            Ok(Readiness::MigrationsPending { applied, expected }) => not_ready(format!(
                "migrations pending: applied {applied:?}, expected {expected}"
            )),
            Err(error @ (Error::Unavailable(_) | Error::Internal(_))) => {
                tracing::warn!(error = format!("{error:#}"), "not ready");
                not_ready("the database is unreachable".into())
            }
            Err(other) => not_ready(other.to_string()),
        }
    }

    /// Prometheus metrics (text exposition format)
    #[oai(path = "/metrics", method = "get", operation_id = "get_metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> PlainText<String> {
        let pool = state.store.pool_status();
        PlainText(metrics::render(pool))
    }
}
