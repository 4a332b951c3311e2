//! Who is calling, resolved in one place: the route table declares what each route requires
//! ([`Requirement`], the 4th field of `with_api_routes!`), and [`enforce`] — one middleware
//! around every route — resolves the caller and answers 401/403 before the handler runs. A
//! route cannot be registered without a requirement.
//!
//! Credentials, first match wins:
//! 1. `Authorization: Bearer <t>` (on `/ws` also `?token=`): `ADMIN_TOKEN` is the bootstrap
//!    admin; `cnp_…` is an API key (401 when unknown, expired or revoked); any other token is a
//!    workspace (agent) token, checked by the handlers of agent routes.
//! 2. The `canopy_session` cookie (`POST /session`): the key it was made from. A stale cookie is
//!    ignored (it is as if there were none).
//! 3. Nothing: in open mode (no `ADMIN_TOKEN`, loopback only) the caller is the local admin, as
//!    before people existed; otherwise anonymous.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, ResponseError};
use chrono::Utc;
use uuid::Uuid;

use super::auth::{bearer, hash_token, is_admin_token, is_open, query_token};
use crate::app::{ActAs, AppState};
use crate::domain::people::{Actor, ActorType, Role};
use crate::error::AppError;
use crate::store::{keys, tokens, Tx};

/// The name of the browser session cookie (`POST /session`).
pub const SESSION_COOKIE: &str = "canopy_session";

/// What a route requires of its caller; declared next to the route in the route table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone (health, metrics, the document, signing in and out).
    Public,
    /// A person with at least this role. Agents get 403.
    Role(Role),
    /// A person with at least this role, or a workspace's agent: a caller without a person's
    /// credential is passed on, and the handler checks the workspace token (only it knows which
    /// workspace the call is for).
    AgentOr(Role),
}

impl Requirement {
    /// The README's name for it: `public`, `viewer`, `editor`, `admin`, `agent or viewer`, …
    pub fn describe(self) -> String {
        match self {
            Requirement::Public => "public".into(),
            Requirement::Role(r) => r.as_str().into(),
            Requirement::AgentOr(r) => format!("agent or {}", r.as_str()),
        }
    }
}

/// How a principal proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Nothing: open mode makes everyone the local admin.
    OpenMode,
    /// `ADMIN_TOKEN`, the bootstrap admin.
    AdminToken,
    /// An API key (`cnp_…`).
    ApiKey,
    /// The browser session cookie.
    Session,
    /// A workspace's own token (an agent).
    WorkspaceToken,
}

/// Which organisation a principal acts in. There is one today; tenants will add variants, so
/// it is a field of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The one organisation.
    Organisation,
}

/// A resolved caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// A person or an agent.
    pub kind: ActorType,
    /// A key's id, `admin`, `local`, or a workspace id.
    pub id: String,
    /// How events name it: the key's name, `admin`, `local`.
    pub name: String,
    /// `None` for agents: their access is per workspace, not a role.
    pub role: Option<Role>,
    /// The organisation it acts in.
    pub scope: Scope,
    /// How it proved who it is.
    pub via: Via,
    /// The API key behind a key or session principal (revocation closes its sockets).
    pub key_id: Option<Uuid>,
    /// The hash of the browser session, for a session principal (sign-out closes its
    /// sockets).
    pub session: Option<String>,
}

impl Principal {
    /// Open mode's caller: everyone is the local admin.
    pub fn local() -> Principal {
        Principal {
            kind: ActorType::User,
            id: "local".into(),
            name: "local".into(),
            role: Some(Role::Admin),
            scope: Scope::Organisation,
            via: Via::OpenMode,
            key_id: None,
            session: None,
        }
    }

    /// Whoever presents `ADMIN_TOKEN`.
    pub fn bootstrap_admin() -> Principal {
        Principal {
            via: Via::AdminToken,
            id: "admin".into(),
            name: "admin".into(),
            ..Principal::local()
        }
    }

    fn from_key(key: &keys::ApiKey, via: Via) -> Principal {
        Principal {
            kind: ActorType::User,
            id: key.id.to_string(),
            name: key.name.clone(),
            role: Some(key.role),
            scope: Scope::Organisation,
            via,
            key_id: Some(key.id),
            session: None,
        }
    }

    /// Whether this is a person who showed a credential (not open mode's implicit admin).
    pub fn is_authenticated_person(&self) -> bool {
        self.kind == ActorType::User && self.via != Via::OpenMode
    }

    /// How events this principal causes name it.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: self.kind,
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }
}

/// A handler's view of the caller: the person [`enforce`] admitted. Only person routes
/// (`Role` requirements) extract it; where none was resolved (an agent or anonymous call on an
/// agent route) extraction fails with 401.
impl FromRequest for Principal {
    type Error = AppError;
    type Future = std::future::Ready<Result<Principal, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .ok_or_else(|| AppError::Unauthorized("authentication required".into())),
        )
    }
}

/// A person route's caller with the application: [`AsPerson::execute`] runs a command whose
/// events and activity rows name them. Extraction fails with 401 where [`Principal`] does.
pub struct AsPerson {
    /// The person the route's requirement admitted.
    pub principal: Principal,
    state: web::Data<AppState>,
}

impl AsPerson {
    /// The application state, for work before or after the command.
    pub fn state(&self) -> &web::Data<AppState> {
        &self.state
    }

    /// Runs `command` in the batcher's command lane as this person (see
    /// [`AppState::execute_as`]): its value, or its error.
    pub async fn execute<T, F>(&self, command: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, AppError> + Send + 'static,
    {
        self.state
            .execute_as(ActAs::Actor(self.principal.actor()), command)
            .await
    }
}

impl FromRequest for AsPerson {
    type Error = AppError;
    type Future = std::future::Ready<Result<AsPerson, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let principal = Principal::from_request(req, payload).into_inner();
        std::future::ready(principal.and_then(|principal| {
            Ok(AsPerson {
                principal,
                state: super::auth::app_state(req)?,
            })
        }))
    }
}

/// The principal resolved for this request, if any.
pub fn of_request(req: &HttpRequest) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

/// What a request's credentials turned out to be.
#[derive(Debug)]
pub enum Resolved {
    /// A person (or open mode's local admin).
    Person(Principal),
    /// A bearer token that is neither the admin token nor an API key: maybe a workspace's.
    OtherToken(String),
    /// No credential, with `ADMIN_TOKEN` set.
    Anonymous,
}

/// The bearer token, or on the WebSocket path also `?token=` (browsers cannot set headers
/// there).
fn presented_token(req: &HttpRequest) -> Option<String> {
    bearer(req)
        .map(str::to_string)
        .or_else(|| (req.path() == "/ws").then(|| query_token(req)).flatten())
}

/// The session id in the request's cookie, if it sent one.
pub fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

pub use crate::commands::keys::KEY_PREFIX;

/// Resolves a request's credentials (see the module docs). Runs key and session lookups on the
/// blocking pool.
pub async fn resolve(req: &HttpRequest, state: &AppState) -> Result<Resolved, AppError> {
    if let Some(token) = presented_token(req) {
        if is_admin_token(state, Some(&token)) {
            return Ok(Resolved::Person(Principal::bootstrap_admin()));
        }
        if token.starts_with(KEY_PREFIX) {
            let hash = hash_token(&token);
            let key = state.read(move |c| Ok(keys::by_hash(c, &hash)?)).await?;
            return match key.filter(|k| k.is_live(Utc::now())) {
                Some(key) => {
                    note_use(state, key.id);
                    Ok(Resolved::Person(Principal::from_key(&key, Via::ApiKey)))
                }
                None => Err(AppError::Unauthorized(
                    "invalid, expired or revoked API key".into(),
                )),
            };
        }
        return Ok(Resolved::OtherToken(token));
    }
    if let Some(session) = session_cookie(req) {
        let hash = hash_token(&session);
        let lookup = hash.clone();
        let key = state
            .read(move |c| Ok(keys::session_key(c, &lookup, Utc::now())?))
            .await?;
        if let Some(key) = key.filter(|k| k.is_live(Utc::now())) {
            note_use(state, key.id);
            return Ok(Resolved::Person(Principal {
                session: Some(hash),
                ..Principal::from_key(&key, Via::Session)
            }));
        }
    }
    if is_open(state) {
        return Ok(Resolved::Person(Principal::local()));
    }
    Ok(Resolved::Anonymous)
}

/// `last_used_at` is written at most this often per key (per instance): a person's every
/// request must not be a write.
pub const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// When this instance last wrote each key's `last_used_at`.
#[derive(Default)]
pub struct KeyUse {
    written: Mutex<HashMap<Uuid, Instant>>,
}

/// Records that a key was used, writing `last_used_at` if this instance has not for a minute.
fn note_use(state: &AppState, key_id: Uuid) {
    let due = {
        let mut seen = state
            .key_use
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match seen.get(&key_id) {
            Some(at) if now.duration_since(*at) < LAST_USED_RESOLUTION => false,
            _ => {
                if seen.len() > 100_000 {
                    seen.clear();
                }
                seen.insert(key_id, now);
                true
            }
        }
    };
    if due {
        let store = state.store.clone();
        tokio::spawn(async move {
            let result = store
                .run(move |c| {
                    keys::touch(c, key_id, Utc::now()).map_err(crate::store::StoreError::from)
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, %key_id, "could not record key use");
            }
        });
    }
}

/// Checks a resolved caller against a requirement. `Ok(Some(p))`: allowed as `p`; `Ok(None)`:
/// passed on to the handler (agent routes without a person); `Err`: 401 or 403.
pub async fn authorize(
    state: &AppState,
    requirement: Requirement,
    resolved: Resolved,
) -> Result<Option<Principal>, AppError> {
    let needed = match requirement {
        Requirement::Public => {
            return Ok(match resolved {
                Resolved::Person(p) => Some(p),
                _ => None,
            })
        }
        Requirement::Role(r) | Requirement::AgentOr(r) => r,
    };
    match resolved {
        Resolved::Person(p) => match p.role {
            Some(role) if role.covers(needed) => Ok(Some(p)),
            _ => Err(AppError::Forbidden(format!(
                "forbidden: this needs the {} role",
                needed.as_str()
            ))),
        },
        _ if matches!(requirement, Requirement::AgentOr(_)) => Ok(None),
        // Open mode: whoever reaches the port is the admin, whatever token they send (as
        // before people existed); only keys and sessions say who someone is.
        Resolved::OtherToken(_) if is_open(state) => Ok(Some(Principal::local())),
        Resolved::OtherToken(token) => {
            let hash = hash_token(&token);
            let owner = state
                .read(move |c| Ok(tokens::workspace_of(c, &hash)?))
                .await?;
            Err(match owner {
                Some(_) => AppError::Forbidden(format!(
                    "forbidden: agents may not call this; it needs the {} role",
                    needed.as_str()
                )),
                None => AppError::Unauthorized("invalid token".into()),
            })
        }
        Resolved::Anonymous => Err(AppError::Unauthorized(
            "admin token or API key required".into(),
        )),
    }
}

/// A write authenticated by the session cookie must carry `Origin` (the boundary has already
/// refused origins that are not allowed) and `Content-Type: application/json`, which a page on
/// another site cannot send without a preflight: the cookie alone never authorizes a write.
fn check_cookie_write(req: &HttpRequest, principal: &Principal) -> Result<(), AppError> {
    use actix_web::http::{header, Method};
    if principal.via != Via::Session
        || matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
    {
        return Ok(());
    }
    if !req.headers().contains_key(header::ORIGIN) {
        return Err(AppError::Forbidden(
            "cookie-authenticated writes need an Origin header".into(),
        ));
    }
    if !super::body::is_json_content_type(req) {
        return Err(AppError::UnsupportedMediaType);
    }
    Ok(())
}

/// The middleware: looks the route up in the route table, resolves the caller and enforces the
/// route's requirement. Requests that match no API route (static files, 404s) pass untouched.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let requirement = req
        .match_pattern()
        .and_then(|pattern| super::requirement_of(req.method().as_str(), &pattern));
    let (Some(requirement), Some(state)) =
        (requirement, req.app_data::<web::Data<AppState>>().cloned())
    else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    // Public routes read no credential here (sign-in and sign-out read their own).
    if requirement == Requirement::Public {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let verdict = match resolve(req.request(), &state).await {
        Ok(resolved) => authorize(&state, requirement, resolved).await,
        Err(e) => Err(e),
    }
    .and_then(|principal| {
        if let Some(p) = &principal {
            check_cookie_write(req.request(), p)?;
        }
        Ok(principal)
    });
    match verdict {
        Ok(principal) => {
            if let Some(principal) = principal {
                req.extensions_mut().insert(principal);
            }
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(refusal) => {
            let response = refusal.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}
