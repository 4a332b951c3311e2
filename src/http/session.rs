//! Browser sessions: the canvas signs in once with a key (`POST /session`) and from then on
//! sends an `HttpOnly`, `SameSite=Strict` cookie instead of keeping a token in JavaScript.
//! Sessions live in the database (every instance accepts them; expiry and revocation hold
//! everywhere), stored as the hash of their id.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::hash_token;
use super::body::{FieldLimit, Json, JsonBody};
use super::openapi::{BodyRefused, DbDown, ErrorBody, InputRefused};
use super::principal::{session_cookie, Principal, KEY_PREFIX, SESSION_COOKIE};
use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::events::control::ControlMessage;
use crate::store::keys;

#[derive(Deserialize, ToSchema)]
/// The body of `POST /session`: an API key to sign in with.
pub struct SignInBody {
    /// An API key (`cnp_…`).
    #[schema(required = true, nullable = false, max_length = 128)]
    key: Option<String>,
}

impl JsonBody for SignInBody {
    const LIMITS: &'static [FieldLimit] = &[("key", 128)];
}

/// Whether the browser reached us over TLS: told so by configuration, or by a trusted proxy's
/// `X-Forwarded-Proto: https` (anyone else's is ignored, as for `X-Forwarded-For`).
fn over_tls(req: &HttpRequest, state: &AppState) -> bool {
    if state.config.session_cookie_secure {
        return true;
    }
    let peer_trusted = req.peer_addr().is_some_and(|peer| {
        let ip = peer.ip().to_canonical();
        state
            .config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    });
    peer_trusted
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| {
                proto
                    .rsplit(',')
                    .next()
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
            })
}

fn cookie(value: String, max_age: time::Duration, secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .max_age(max_age)
        .finish()
}

#[utoipa::path(
    post,
    path = "/session",
    tag = "people",
    summary = "Sign in with an API key: 204 and the `canopy_session` cookie (HttpOnly, SameSite=Strict)",
    request_body(content = SignInBody, content_type = "application/json"),
    responses(
        (status = 204, description = "Signed in: `Set-Cookie: canopy_session=…`"),
        (status = 401, description = "The key is unknown, expired or revoked", body = ErrorBody),
        InputRefused, BodyRefused, DbDown,
    ),
)]
#[tracing::instrument(skip_all)]
/// `POST /session`: sets the session cookie for a live API key and answers who that is.
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<SignInBody>,
) -> AppResult<HttpResponse> {
    let key = body
        .key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| AppError::BadRequest("key: is required".into()))?;
    if !key.starts_with(KEY_PREFIX) {
        return Err(AppError::Unauthorized(
            "invalid, expired or revoked API key".into(),
        ));
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let session = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let (key_hash, session_hash) = (hash_token(&key), hash_token(&session));
    let ttl = state.config.session_ttl;
    let key_id = state
        .read(move |c| {
            let now = Utc::now();
            let key = keys::by_hash(c, &key_hash)?
                .filter(|k| k.is_live(now))
                .ok_or_else(|| {
                    AppError::Unauthorized("invalid, expired or revoked API key".into())
                })?;
            let expires = now
                + chrono::Duration::from_std(ttl)
                    .map_err(|e| AppError::Internal(anyhow::anyhow!("session ttl: {e}")))?;
            keys::insert_session(c, &session_hash, key.id, now, expires)?;
            Ok(key.id)
        })
        .await?;
    tracing::info!(%key_id, "session started");
    let max_age = time::Duration::seconds(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    Ok(HttpResponse::NoContent()
        .cookie(cookie(session, max_age, over_tls(&req, &state)))
        .finish())
}

#[utoipa::path(
    delete,
    path = "/session",
    tag = "people",
    summary = "Sign out: the session ends on every instance and the cookie is cleared",
    responses(
        (status = 204, description = "Signed out (also when there was no session)"),
        DbDown,
    ),
)]
/// `DELETE /session`: ends the cookie's session (if any) and clears the cookie; its sockets
/// close.
pub async fn sign_out(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    if let Some(session) = session_cookie(&req) {
        let hash = hash_token(&session);
        let ended = hash.clone();
        state
            .read(move |c| Ok(keys::end_session(c, &ended)?))
            .await?;
        // Its sockets close too, on every instance.
        state
            .control
            .publish(ControlMessage::SessionEnded { session: hash })
            .await;
    }
    Ok(HttpResponse::NoContent()
        .cookie(cookie(
            String::new(),
            time::Duration::ZERO,
            over_tls(&req, &state),
        ))
        .finish())
}

#[utoipa::path(
    get,
    path = "/session",
    tag = "people",
    summary = "Who the caller is: `{\"type\",\"id\",\"name\",\"role\"}`",
    responses(
        (status = 200, description = "The caller (open mode: the local admin)", body = Object),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ),
)]
/// `GET /session`: who the caller is (`{"type", "id", "name", "role"}`).
pub async fn whoami(principal: Principal) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(json!({
        "type": principal.kind,
        "id": principal.id,
        "name": principal.name,
        "role": principal.role,
    })))
}
