//! `TelemetryBody`: the body of `POST /agent/telemetry`, read as [`ValidJson`] reads any body
//! (same limits, encodings and statuses), then made a [`Snapshot`] against the server's clock.
//! Containers that break the contract are left out rather than costing the whole snapshot
//! ([`salvage`](super::salvage)).

use chrono::Utc;
use nexus_contract::TelemetryPayload;
use poem::{Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};

use super::check::Schema;
use super::json::{self, ValidJson};
use super::read::{self, BodyLimits};
use super::salvage::Accepted;
use crate::api::AppState;
use crate::domain::snapshot::{SkewWindow, Snapshot};
use crate::error::Error;

/// A telemetry snapshot to store, and the posted containers left out of it.
pub struct TelemetryBody(pub Accepted);

impl Payload for TelemetryBody {
    const CONTENT_TYPE: &'static str = ValidJson::<TelemetryPayload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        ValidJson::<TelemetryPayload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        ValidJson::<TelemetryPayload>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        ValidJson::<TelemetryPayload>::register(registry);
    }
}

impl ParsePayload for TelemetryBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limits = *request
            .data::<BodyLimits>()
            .expect("BodyLimits is app data");
        let skew = request
            .data::<AppState>()
            .expect("AppState is app data")
            .skew;
        let bytes = read::read_body(request, body, limits).await?;
        Ok(Self(accept(&bytes, Utc::now(), skew)?))
    }
}

impl_apirequest_for_payload!(TelemetryBody);

/// The snapshot in `bytes`: the payload's reader for a conforming document, else the `Value`
/// path, which names every failing field or leaves out the failing containers.
pub fn accept(
    bytes: &[u8],
    now: chrono::DateTime<Utc>,
    skew: SkewWindow,
) -> Result<Accepted, Error> {
    if let Some(payload) = json::parse_conforming::<TelemetryPayload>(bytes)? {
        let snapshot = Snapshot::new(payload, now, skew).map_err(Error::Validation)?;
        return Ok(Accepted::whole(snapshot));
    }
    let value = json::value_of(bytes)?;
    Accepted::from_value(value, &Schema::of::<TelemetryPayload>(), now, skew)
        .map_err(Error::Validation)
}
