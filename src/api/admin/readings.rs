//! Reading data back under `/api/v1`: aggregated metrics of a host or a container, a host's
//! containers with their latest state, and a host's liveness events.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ADMIN_AUTHENTICATION, AdminToken, NO_SUCH_HOST, named_path_params};
use crate::api::openapi::operation_errors::{
    DocumentedProblem, OperationError, SERVER_FAULTS, documented,
};
use crate::api::{ApiTags, AppState};
use crate::domain::FieldError;
use crate::domain::host::default_page_size;
use crate::domain::host::{Cursor, search_text};
use crate::domain::series::{Bucket, SeriesRequest};
use crate::error::Error;
use crate::store::events::Event;
use crate::store::readings::{ContainerMetricsBucket, ContainerState, HostMetricsBucket};

#[derive(Default)]
pub struct ReadingsApi;

/// The range and bucket a series answers; its properties open both series' schemas
/// (`#[oai(flatten)]`, so the published document names no type of its own for them).
#[derive(Debug, Clone, Object)]
pub struct SeriesRange {
    /// The bucket width used: the one asked for, or the finest that keeps the answer under
    /// 1,000 points.
    pub bucket: Bucket,
    /// Start of the range answered: `since` rounded down to a whole bucket.
    pub since: DateTime<Utc>,
    /// End of the range answered (exclusive): `until` rounded up to a whole bucket.
    pub until: DateTime<Utc>,
    /// Deprecated: the same as `since` (named `from_` by Python generators).
    #[oai(deprecated)]
    pub from: DateTime<Utc>,
    /// Deprecated: the same as `until`.
    #[oai(deprecated)]
    pub to: DateTime<Utc>,
}

impl From<&SeriesRequest> for SeriesRange {
    fn from(request: &SeriesRequest) -> Self {
        Self {
            bucket: request.bucket,
            since: request.since,
            until: request.until,
            from: request.since,
            to: request.until,
        }
    }
}

/// Host metrics aggregated per time bucket.
#[derive(Debug, Clone, Object)]
pub struct HostSeries {
    #[oai(flatten)]
    pub range: SeriesRange,
    /// Buckets with at least one sample, oldest first.
    pub points: Vec<HostMetricsBucket>,
}

/// Container metrics aggregated per time bucket.
#[derive(Debug, Clone, Object)]
pub struct ContainerSeries {
    #[oai(flatten)]
    pub range: SeriesRange,
    /// Buckets with at least one sample, oldest first.
    pub points: Vec<ContainerMetricsBucket>,
}

/// A host's containers.
#[derive(Debug, Clone, Object)]
pub struct ContainerList {
    /// Its containers, by name.
    pub items: Vec<ContainerState>,
}

/// One page of a host's events, newest first.
#[derive(Debug, Clone, Object)]
pub struct EventPage {
    /// Events, newest first.
    pub items: Vec<Event>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// 422 of the metrics operations.
const MALFORMED_RANGE: DocumentedProblem =
    DocumentedProblem::new(422, "A malformed id, range or bucket; `errors` names each.");

/// Answer of `GET /api/v1/hosts/{id}/metrics`.
#[derive(ApiResponse)]
pub enum HostSeriesResponse {
    /// The aggregated series.
    #[oai(status = 200)]
    Ok(Json<HostSeries>),
}

documented! {
    /// What `GET /api/v1/hosts/{id}/metrics` answers otherwise.
    pub GetHostMetrics: [NO_SUCH_HOST, MALFORMED_RANGE] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `GET /api/v1/containers/{id}/metrics`.
#[derive(ApiResponse)]
pub enum ContainerSeriesResponse {
    /// The aggregated series.
    #[oai(status = 200)]
    Ok(Json<ContainerSeries>),
}

documented! {
    /// What `GET /api/v1/containers/{id}/metrics` answers otherwise.
    pub GetContainerMetrics: [
        DocumentedProblem::new(404, "No container has this id."),
        MALFORMED_RANGE,
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `GET /api/v1/hosts/{id}/containers`.
#[derive(ApiResponse)]
pub enum ContainerListResponse {
    /// The host's containers.
    #[oai(status = 200)]
    Ok(Json<ContainerList>),
}

documented! {
    /// What `GET /api/v1/hosts/{id}/containers` answers otherwise.
    pub ListHostContainers: [
        NO_SUCH_HOST,
        DocumentedProblem::new(422, "A malformed id or filter."),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// Answer of `GET /api/v1/hosts/{id}/events`.
#[derive(ApiResponse)]
pub enum EventPageResponse {
    /// A page of events.
    #[oai(status = 200)]
    Ok(Json<EventPage>),
}

documented! {
    /// What `GET /api/v1/hosts/{id}/events` answers otherwise.
    pub ListHostEvents: [
        NO_SUCH_HOST,
        DocumentedProblem::new(422, "A malformed id, limit or cursor."),
    ] + ADMIN_AUTHENTICATION + SERVER_FAULTS
}

/// The series a metrics operation asks for, from its range, `since` and `until` or their
/// deprecated names `from` and `to` (kept for clients written before; `from` is a keyword in
/// Python), each optional, and its bucket. Errors name the current parameters.
fn series_request(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    bucket: Option<Bucket>,
) -> Result<SeriesRequest, Error> {
    let mut errors = Vec::new();
    let mut either = |current: Option<DateTime<Utc>>,
                      old: Option<DateTime<Utc>>,
                      names: (&str, &str)| match (current, old) {
        (Some(current), Some(old)) if current != old => {
            errors.push(FieldError::new(
                names.0,
                format!(
                    "differs from `{}`, its deprecated name; give one of them",
                    names.1
                ),
            ));
            None
        }
        (current, old) => current.or(old),
    };
    let since = either(since, from, ("since", "from"));
    let until = either(until, to, ("until", "to"));
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    SeriesRequest::new(since, until, bucket, Utc::now()).map_err(Error::Validation)
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Admin")]
impl ReadingsApi {
    /// Host metrics over time
    ///
    /// Each gauge's average, minimum and maximum per bucket, counters as rates in bytes per
    /// second, and the sample count, for `[since, until)` widened to whole buckets; without a
    /// range, the last hour. Buckets of 5 minutes or more are read from the rollups, finer ones
    /// from raw snapshots; a range older than the raw retention is answered from the rollups.
    #[oai(
        path = "/hosts/:id/metrics",
        method = "get",
        transform = "named_path_params",
        operation_id = "get_host_metrics"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "poem-openapi takes each parameter as an argument"
    )]
    async fn host_metrics(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
        /// Start of the range (RFC 3339, inclusive); default: one hour before `until`.
        since: Query<Option<DateTime<Utc>>>,
        /// End of the range (RFC 3339, exclusive), later than `since` and at most 400 days
        /// after it; default: now.
        until: Query<Option<DateTime<Utc>>>,
        /// Deprecated name of `since`, the same parameter (giving both with different values
        /// is a 422).
        #[oai(deprecated)]
        from: Query<Option<DateTime<Utc>>>,
        /// Deprecated name of `until`, the same parameter (giving both with different values
        /// is a 422).
        #[oai(deprecated)]
        to: Query<Option<DateTime<Utc>>>,
        /// Bucket width; default: the finest that keeps the answer under 1,000 points.
        bucket: Query<Option<Bucket>>,
    ) -> Result<HostSeriesResponse, OperationError<GetHostMetrics>> {
        let request = series_request(since.0, until.0, from.0, to.0, bucket.0)?;
        let points = state
            .reads
            .run(|store| async {
                store.host(id.0).await?;
                store.host_series(id.0, &request).await
            })
            .await?;
        Ok(HostSeriesResponse::Ok(Json(HostSeries {
            range: (&request).into(),
            points,
        })))
    }

    /// Container metrics over time
    ///
    /// As for hosts: gauges' average, minimum and maximum per bucket, counters as rates in bytes
    /// per second, read from the rollups for buckets of 5 minutes or more; without a range, the
    /// last hour.
    #[oai(
        path = "/containers/:id/metrics",
        method = "get",
        transform = "named_path_params",
        operation_id = "get_container_metrics"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "poem-openapi takes each parameter as an argument"
    )]
    async fn container_metrics(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The container's id (`id` in `GET /api/v1/hosts/{id}/containers`).
        id: Path<i64>,
        /// Start of the range (RFC 3339, inclusive); default: one hour before `until`.
        since: Query<Option<DateTime<Utc>>>,
        /// End of the range (RFC 3339, exclusive), later than `since` and at most 400 days
        /// after it; default: now.
        until: Query<Option<DateTime<Utc>>>,
        /// Deprecated name of `since`, the same parameter (giving both with different values
        /// is a 422).
        #[oai(deprecated)]
        from: Query<Option<DateTime<Utc>>>,
        /// Deprecated name of `until`, the same parameter (giving both with different values
        /// is a 422).
        #[oai(deprecated)]
        to: Query<Option<DateTime<Utc>>>,
        /// Bucket width; default: the finest that keeps the answer under 1,000 points.
        bucket: Query<Option<Bucket>>,
    ) -> Result<ContainerSeriesResponse, OperationError<GetContainerMetrics>> {
        let request = series_request(since.0, until.0, from.0, to.0, bucket.0)?;
        let points = state
            .reads
            .run(|store| async {
                if !store.container_exists(id.0).await? {
                    return Err(Error::NotFound("container"));
                }
                store.container_series(id.0, &request).await
            })
            .await?;
        Ok(ContainerSeriesResponse::Ok(Json(ContainerSeries {
            range: (&request).into(),
            points,
        })))
    }

    /// A host's containers with their latest state
    ///
    /// Containers not seen for longer than the staleness threshold are listed with
    /// `stale: true` rather than hidden.
    #[oai(
        path = "/hosts/:id/containers",
        method = "get",
        transform = "named_path_params",
        operation_id = "list_host_containers"
    )]
    async fn host_containers(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
        /// Only containers in this Docker state (`running`, `exited`, …).
        #[oai(name = "state", validator(max_length = 32))]
        state_filter: Query<Option<String>>,
    ) -> Result<ContainerListResponse, OperationError<ListHostContainers>> {
        let state_filter = state_filter
            .0
            .as_deref()
            .map(|text| search_text("state", text))
            .transpose()
            .map_err(|error| Error::Validation(vec![error]))?;
        let items = state
            .reads
            .run(|store| async {
                store.host(id.0).await?;
                store
                    .host_containers(id.0, state_filter.as_deref(), state.container_stale_after)
                    .await
            })
            .await?;
        Ok(ContainerListResponse::Ok(Json(ContainerList { items })))
    }

    /// A host's events
    ///
    /// Its liveness transitions (`online`, `offline`, `recovered`) and its containers' events,
    /// newest first. `GET /api/v1/events` has every filter, oldest first.
    #[oai(
        path = "/hosts/:id/events",
        method = "get",
        transform = "named_path_params",
        operation_id = "list_host_events"
    )]
    async fn host_events(
        &self,
        state: Data<&AppState>,
        _auth: AdminToken,
        /// The host's id.
        id: Path<i64>,
        /// Events per page.
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
        /// Where to continue: the `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<EventPageResponse, OperationError<ListHostEvents>> {
        let before = cursor
            .0
            .as_deref()
            .map(|text| Cursor::parse("cursor", text))
            .transpose()
            .map_err(|e| Error::Validation(vec![e]))?;
        let limit = i64::from(limit.0);
        let mut items = state
            .reads
            .run(|store| async {
                store.host(id.0).await?;
                store
                    .host_events(id.0, before.map(|cursor| cursor.0), limit + 1)
                    .await
            })
            .await?;
        let next_cursor = (items.len() as i64 > limit).then(|| {
            items.truncate(limit as usize);
            Cursor(items[items.len() - 1].id).encode()
        });
        Ok(EventPageResponse::Ok(Json(EventPage {
            items,
            next_cursor,
        })))
    }
}
