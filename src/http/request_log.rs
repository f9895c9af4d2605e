//! One log line and one metrics sample per request, under a request id that is also returned as
//! `X-Request-Id` (a well-formed id sent by the client is kept, so calls can be traced across
//! systems). Headers are never logged: they carry bearer tokens.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;

use super::metrics;

pub struct RequestLog;

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;

    fn transform(&self, endpoint: E) -> Self::Output {
        RequestLogEndpoint(endpoint)
    }
}

pub struct RequestLogEndpoint<E>(E);

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let id = request
            .header("X-Request-Id")
            .filter(|id| (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let method = request.method().clone();
        let route = route_of(request.uri().path());
        let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
        let started = Instant::now();
        let mut response = match self.0.call(request).instrument(span.clone()).await {
            Ok(response) => response.into_response(),
            Err(error) => error.into_response(),
        };
        let status = response.status().as_u16();
        span.in_scope(|| {
            tracing::info!(
                status,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request"
            )
        });
        metrics::record_request(&route, status);
        if let Ok(value) = id.parse() {
            response.headers_mut().insert("X-Request-Id", value);
        }
        Ok(response)
    }
}

/// The path with numeric segments replaced by `{id}`, so metrics have bounded cardinality.
fn route_of(path: &str) -> String {
    let known = [
        "/agent/telemetry",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/openapi.yaml",
    ];
    if known.contains(&path) || path.starts_with("/docs") {
        return if path.starts_with("/docs") {
            "/docs".into()
        } else {
            path.into()
        };
    }
    if path.starts_with("/api/v1/") {
        return path
            .split('/')
            .map(|segment| {
                if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                    "{id}"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
    }
    "other".into()
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn routes_have_bounded_cardinality() {
        assert_eq!(route_of("/agent/telemetry"), "/agent/telemetry");
        assert_eq!(
            route_of("/api/v1/hosts/42/tokens/7/rotate"),
            "/api/v1/hosts/{id}/tokens/{id}/rotate"
        );
        assert_eq!(route_of("/docs/oauth-receiver.html"), "/docs");
        assert_eq!(route_of("/wp-admin/install.php"), "other");
    }
}
