//! Request ids: every request gets one, carried in its tracing span and returned as
//! `X-Request-Id`, so one line of a client's report finds every log line of that request (and
//! the load balancer's line, when it sets the header: see `deploy/nginx.conf`).
//!
//! A sane incoming `X-Request-Id` is kept (a proxy in front already chose one); anything else
//! is replaced by a fresh one. The span and the access log name the path only: the query string
//! can carry a credential (`GET /ws?token=…`) and is never logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;

/// The header read from the request and set on every response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id kept, in bytes; longer ones are replaced. A UUID is 36 bytes.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// A request's id, in the request's extensions for handlers that want to quote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The incoming id when it is 1 to [`MAX_REQUEST_ID_LEN`] bytes of `A-Z a-z 0-9 - _ . : /`
/// (what proxies and tracing systems generate); otherwise `None`. Anything else could forge log
/// lines or carry data a log must not hold, so it is dropped, not cleaned.
pub fn sane_request_id(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/');
    (!value.is_empty() && value.len() <= MAX_REQUEST_ID_LEN && value.chars().all(allowed))
        .then_some(value)
}

/// The middleware (outermost, so refusals by the other middlewares carry an id too): assigns the
/// id, runs the request inside a `request` span holding it, sets `X-Request-Id` on the response
/// (errors included) and logs one line per request at `info`: method, path, status, duration.
pub async fn assign(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
    );
    let started = Instant::now();
    let value = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    // Routing needs the only handle on the request, so none is kept here: an error from an inner
    // middleware (a refused preflight) has no request to build a response with, and is returned
    // as an error whose response carries the header.
    match next.call(req).instrument(span.clone()).await {
        Ok(mut response) => {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
            log_completion(&span, response.status(), started);
            Ok(response)
        }
        Err(error) => {
            let mut response = error.error_response();
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
            log_completion(&span, response.status(), started);
            Err(InternalError::from_response(error, response).into())
        }
    }
}

fn log_completion(span: &tracing::Span, status: StatusCode, started: Instant) {
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sane(raw: &str) -> Option<String> {
        sane_request_id(&HeaderValue::from_str(raw).unwrap()).map(str::to_owned)
    }

    #[test]
    fn proxy_and_tracing_ids_are_kept() {
        for id in [
            "0b8f0f1c-8f7e-4a52-9d3c-5b2b1f6f9a10",
            "f3a1c2d4e5b6a7980123456789abcdef",
            "req_01HZX.3:7/a",
        ] {
            assert_eq!(sane(id).as_deref(), Some(id));
        }
    }

    #[test]
    fn empty_long_or_odd_ids_are_replaced() {
        assert_eq!(sane(""), None);
        assert_eq!(sane(&"a".repeat(MAX_REQUEST_ID_LEN + 1)), None);
        assert!(sane(&"a".repeat(MAX_REQUEST_ID_LEN)).is_some());
        for id in [
            "has space",
            "quote\"d",
            "new\tline",
            "a=b",
            "x?token=t",
            "{}",
        ] {
            assert_eq!(sane(id), None, "{id:?}");
        }
    }
}
