//! Serving floor: the operations endpoints `/healthz`, `/readyz` and `/metrics`.

use http::{HeaderValue, Response, StatusCode, header};

use crate::metrics::Metrics;
use crate::respond::{Body, full};

/// `GET /healthz`: the process answers.
pub fn healthz() -> Response<Body> {
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// `GET /readyz`: 200 with a loaded config, 503 once draining, and 503 while an origin whose
/// credentials the SDK provides holds none that are valid, or no JWKS is held yet
/// (`unready` names them).
pub fn readyz(draining: bool, unready: &[&str]) -> Response<Body> {
    if draining {
        json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
    } else if !unready.is_empty() {
        let body = serde_json::json!({
            "status": "no_keys",
            "origins": unready,
        });
        let mut resp = crate::respond::json(StatusCode::SERVICE_UNAVAILABLE, body.to_string());
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    } else {
        json(StatusCode::OK, r#"{"status":"ready"}"#)
    }
}

/// `GET /metrics`.
pub fn metrics(metrics: &Metrics, cache_entries: u64) -> Response<Body> {
    let mut resp = Response::new(full(metrics.render(cache_entries)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn json(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = crate::respond::json(status, body);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
