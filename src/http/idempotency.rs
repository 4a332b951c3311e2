//! `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header) on POST, PUT, PATCH and
//! DELETE: the first response to a key is kept in `idempotency_keys` for
//! [`IDEMPOTENCY_KEY_TTL`], and a retry with the same key gets it back, on any instance, without
//! the request running again.
//!
//! - The key is claimed by an INSERT before the request runs; the primary key (caller, key)
//!   decides between racing retries on any number of instances, so a request runs at most once.
//! - Same key, same request (method, path with query, body): the stored status, headers and
//!   body, with `Idempotent-Replayed: true`. No command runs, no event is appended.
//! - Same key, another request: 422 (the draft's §2.7).
//! - Same key while the first is still running: the retry waits for its answer (up to
//!   [`IN_FLIGHT_WAIT`]), then 409 with `Retry-After` (the draft's §2.7).
//! - A 5xx answer is not kept (the server could not do the work: busy, unavailable, failed) and
//!   the key is released, so a retry runs afresh; nor is a 401 (nothing ran).
//!
//! Keys are scoped to the caller ([`caller_scope`]): two callers never see each other's keys.

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::app::AppState;
use crate::error::{AppError, RETRY_AFTER_SECONDS};
use crate::store::idempotency::{self as keys, StoredResponse};
use crate::store::StoreError;

/// The request header (draft-ietf-httpapi-idempotency-key-header §2).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that is a stored one, not a new execution.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// How long a key and its response are kept: a retry later than this runs as a new request.
pub const IDEMPOTENCY_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;
/// How long a retry waits for the first request with its key to answer before it gets 409.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(5);
/// How often a waiting retry looks for the first request's answer.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(25);
/// The largest response body kept; a larger one is replaced by a note saying so (the status is
/// still repeated, and the request still never runs twice).
pub const MAX_STORED_BODY_BYTES: usize = 1024 * 1024;
/// Response headers a replay repeats; the rest describe the connection, not the answer.
const KEPT_HEADERS: [header::HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    header::RETRY_AFTER,
];

/// Whose key space a request's Idempotency-Key lives in, decided here and nowhere else: the
/// person the principal middleware resolved (`principal:<id>`: an API key's id, `admin`,
/// `local` in open mode); otherwise — an agent call — a SHA-256 of the bearer token it presents
/// (hashed, never stored). `None` for a caller nothing identifies (a public route such as
/// `POST /session` or `DELETE /session`): such callers would share one key space, so one
/// person's retry could be answered with another's stored response; their requests run
/// without the header's effect instead.
pub fn caller_scope(req: &HttpRequest) -> Option<String> {
    if let Some(principal) = super::principal::of_request(req) {
        return Some(format!("principal:{}", principal.id));
    }
    super::auth::bearer(req).map(|token| format!("bearer:{}", super::auth::hash_token(token)))
}

/// The key from the header: an sf-string (`"…"`, as the draft writes it) or, as most clients
/// send it, the bare value; 1 to [`MAX_KEY_BYTES`] visible ASCII characters other than `"`
/// and `\` (so both forms mean the same key and no escaping is needed).
fn parse_key(raw: &header::HeaderValue) -> Option<String> {
    let text = raw.to_str().ok()?.trim();
    let key = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let allowed = |b: u8| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\';
    (key.bytes().all(allowed) && !key.is_empty() && key.len() <= MAX_KEY_BYTES)
        .then(|| key.to_string())
}

/// What makes two requests "the same" for a key: method, path with query, and body bytes.
pub fn fingerprint(method: &Method, path_and_query: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_str().as_bytes());
    hash.update([0]);
    hash.update(path_and_query.as_bytes());
    hash.update([0]);
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn refusal(status: StatusCode, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if status == StatusCode::CONFLICT {
        response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string()));
    }
    response.json(json!({ "error": format!("Idempotency-Key: {message}") }))
}

fn replay(stored: &StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        if let Some(value) = value.as_str() {
            response.insert_header((name.as_str(), value));
        }
    }
    response.insert_header((IDEMPOTENT_REPLAYED, "true"));
    response.body(stored.body.clone())
}

/// Reads the whole body (at most `MAX_BODY_BYTES`, else 413 as the JSON extractor would).
async fn read_body(payload: &mut Payload) -> Result<web::Bytes, AppError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| AppError::BadRequest("could not read the request body".into()))?;
        if body.len() + chunk.len() > super::MAX_BODY_BYTES {
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The middleware (see the module documentation). Requests without the header, and safe
/// methods, pass through untouched.
pub async fn middleware(
    state: web::Data<AppState>,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let unsafe_method = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let Some(raw_key) = req.headers().get(IDEMPOTENCY_KEY).filter(|_| unsafe_method) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // Two keys on one request: whichever one a retry repeats, the other would run it again.
    if req.headers().get_all(IDEMPOTENCY_KEY).nth(1).is_some() {
        return Ok(req.into_response(refusal(
            StatusCode::BAD_REQUEST,
            "must be sent once; this request has more than one",
        )));
    }
    let Some(scope) = caller_scope(req.request()) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(key) = parse_key(raw_key) else {
        return Ok(req.into_response(refusal(
            StatusCode::BAD_REQUEST,
            "must be 1 to 255 visible ASCII characters other than '\"' and '\\', bare or in quotes",
        )));
    };
    let body = match read_body(&mut req.take_payload()).await {
        Ok(body) => body,
        Err(e) => return Ok(req.error_response(e)),
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str())
        .to_string();
    let fingerprint = fingerprint(req.method(), &path_and_query, &body);
    req.set_payload(Payload::from(body));

    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    loop {
        let (s, k, f) = (scope.clone(), key.clone(), fingerprint.clone());
        let attempt = state
            .store
            .run(move |c| {
                if keys::claim(c, &s, &k, &f, Utc::now())? {
                    return Ok::<_, StoreError>(None);
                }
                Ok(Some(keys::find(c, &s, &k)?))
            })
            .await;
        let existing = match attempt {
            Ok(None) => break, // claimed: this request runs
            Ok(Some(existing)) => existing,
            Err(e) => return Ok(req.error_response(AppError::from(e))),
        };
        match existing {
            // Released (or pruned) between the claim and the look: claim again.
            None => continue,
            Some(stored) if stored.fingerprint != fingerprint => {
                return Ok(req.into_response(refusal(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "already used for a different request (method, path or body)",
                )));
            }
            Some(stored) => match stored.response {
                Some(response) => return Ok(req.into_response(replay(&response))),
                None if tokio::time::Instant::now() >= deadline => {
                    return Ok(req.into_response(refusal(
                        StatusCode::CONFLICT,
                        "a request with this key is still in progress",
                    )));
                }
                None => tokio::time::sleep(IN_FLIGHT_POLL).await,
            },
        }
    }

    // The request and the bookkeeping of its answer run in a task of their own: a client that
    // hangs up mid-request must not leave the key claimed with no answer.
    let running = next.call(req);
    let task = actix_web::rt::spawn(async move {
        let response = match running.await {
            Ok(response) => response,
            Err(e) => {
                forget(&state, scope, key).await;
                return Err(e);
            }
        };
        let (request, response) = response.into_parts();
        let (head, body) = response.into_parts();
        let bytes = match actix_web::body::to_bytes(body).await {
            Ok(bytes) => bytes,
            Err(_) => {
                forget(&state, scope, key).await;
                return Err(AppError::Internal(anyhow::anyhow!("response body failed")).into());
            }
        };
        // A 401 is not kept either: the request did nothing, and unauthenticated callers
        // must not be able to fill the table.
        if head.status().is_server_error() || head.status() == StatusCode::UNAUTHORIZED {
            forget(&state, scope, key).await;
        } else {
            let stored = StoredResponse {
                status: head.status().as_u16(),
                headers: KEPT_HEADERS
                    .iter()
                    .filter_map(|name| {
                        let value = head.headers().get(name)?.to_str().ok()?;
                        Some((name.as_str().to_string(), json!(value)))
                    })
                    .collect(),
                body: if bytes.len() <= MAX_STORED_BODY_BYTES {
                    bytes.to_vec()
                } else {
                    serde_json::to_vec(&json!({
                        "error": "Idempotency-Key: the first response was over 1 MiB and is not kept",
                    }))
                    .unwrap_or_default()
                },
            };
            if let Err(e) = state
                .store
                .run(move |c| keys::complete(c, &scope, &key, &stored).map_err(StoreError::from))
                .await
            {
                tracing::error!(error = %e, "could not store an idempotent response; retries with its key will get 409 until it expires");
            }
        }
        Ok(ServiceResponse::new(
            request,
            head.set_body(BoxBody::new(bytes)),
        ))
    }
    // The request's span (its request id) goes with it into the task.
    .instrument(tracing::Span::current()));
    task.await
        .unwrap_or_else(|_| Err(AppError::Internal(anyhow::anyhow!("request task failed")).into()))
}

/// Releases a claim whose request produced no answer worth repeating.
async fn forget(state: &AppState, scope: String, key: String) {
    if let Err(e) = state
        .store
        .run(move |c| keys::release(c, &scope, &key).map_err(StoreError::from))
        .await
    {
        tracing::warn!(error = %e, "could not release an idempotency key");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bare_or_quoted_visible_ascii() {
        let parse = |s: &str| parse_key(&header::HeaderValue::from_str(s).unwrap());
        assert_eq!(parse("abc-123").as_deref(), Some("abc-123"));
        assert_eq!(parse("\"8e03978e\"").as_deref(), Some("8e03978e"));
        assert_eq!(parse(""), None);
        assert_eq!(parse("\"\""), None);
        assert_eq!(parse("a b"), None);
        assert_eq!(parse("\"abc"), None);
        assert_eq!(parse("a\"b"), None);
        assert_eq!(parse("a\\b"), None);
        assert_eq!(parse(&"k".repeat(256)), None);
        assert_eq!(parse(&"k".repeat(255)).map(|k| k.len()), Some(255));
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let base = fingerprint(&Method::POST, "/workspaces", b"{}");
        assert_eq!(base, fingerprint(&Method::POST, "/workspaces", b"{}"));
        assert_ne!(base, fingerprint(&Method::PUT, "/workspaces", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/workspaces?x=1", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/workspaces", b"{ }"));
    }
}
