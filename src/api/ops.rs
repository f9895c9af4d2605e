//! Operator endpoints: liveness, readiness and Prometheus metrics.

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::openapi::operation_errors::{
    DocumentedProblem, OperationError, RETRY_AFTER, documented,
};
use super::{ApiTags, AppState};
use crate::error::Error;
use crate::http::metrics;
use crate::store::Readiness;

#[derive(Default)]
pub struct OpsApi;

/// The process's health.
#[derive(Object)]
struct Health {
    /// `ok` from `/healthz`, `ready` from `/readyz`.
    status: HealthStatus,
}

/// What the health endpoint found.
#[derive(Enum)]
#[oai(rename_all = "lowercase")]
enum HealthStatus {
    /// The process serves requests.
    Ok,
    /// The database answers and every migration is applied.
    Ready,
}

#[derive(ApiResponse)]
enum HealthResponse {
    /// The process serves requests.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

#[derive(ApiResponse)]
enum MetricsResponse {
    /// Every metric, in the Prometheus text exposition format (version 0.0.4).
    #[oai(status = 200)]
    Ok(PlainText<String>),
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The database is reachable and every migration is applied.
    #[oai(status = 200)]
    Ready(Json<Health>),
}

documented! {
    /// What `GET /readyz` answers otherwise.
    GetReadiness: [
        DocumentedProblem::new(
            503,
            "Not ready: the database is unreachable or migrations are pending.",
        )
        .with_headers(&[RETRY_AFTER]),
    ]
}

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness: the process serves requests
    ///
    /// Answers 200 while the process serves, whether or not the database is reachable: for an
    /// orchestrator's liveness probe. No authentication.
    #[oai(path = "/healthz", method = "get", operation_id = "get_health")]
    async fn health(&self) -> HealthResponse {
        HealthResponse::Ok(Json(Health {
            status: HealthStatus::Ok,
        }))
    }

    /// Readiness: the database is reachable and migrations are current
    ///
    /// For an orchestrator's readiness probe or a load balancer. No authentication.
    #[oai(path = "/readyz", method = "get", operation_id = "get_readiness")]
    async fn ready(
        &self,
        state: Data<&AppState>,
    ) -> Result<ReadyResponse, OperationError<GetReadiness>> {
        let not_ready = match state.store.readiness().await {
            Ok(Readiness::Ready) => {
                return Ok(ReadyResponse::Ready(Json(Health {
                    status: HealthStatus::Ready,
                })));
            }
            Ok(Readiness::MigrationsPending { applied, expected }) => Error::NotReady {
                detail: format!("migrations pending: applied {applied:?}, expected {expected}"),
                cause: None,
            },
            Err(Error::Unavailable(cause) | Error::Internal(cause)) => Error::NotReady {
                detail: "the database is unreachable".into(),
                cause: Some(cause),
            },
            Err(other) => Error::NotReady {
                detail: other.to_string(),
                cause: None,
            },
        };
        Err(not_ready.into())
    }

    /// Prometheus metrics (text exposition format)
    ///
    /// Request counts by route and status, ingest latency and batch sizes, rows written and
    /// the database pool's state; the README lists each. No authentication.
    #[oai(
        path = "/metrics",
        method = "get",
        operation_id = "get_prometheus_metrics"
    )]
    async fn metrics(&self, state: Data<&AppState>) -> MetricsResponse {
        let pool = state.store.pool_status();
        let pool = metrics::Pool {
            size: pool.size,
            max_size: pool.max_size,
            available: pool.available,
            waiting: pool.waiting,
        };
        let (container_cache_hosts, container_cache_bytes) = state.store.container_cache_usage();
        let caches = metrics::Caches {
            tokens: state.agent_cache.len(),
            container_cache_hosts,
            container_cache_bytes,
        };
        MetricsResponse::Ok(PlainText(metrics::render(pool, caches)))
    }
}
