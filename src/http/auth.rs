//! Who is calling on a workspace's behalf: a person (admitted by `principal::enforce`), a
//! workspace (its own token), or nobody.
//!
//! With ADMIN_TOKEN unset the server is open; config refuses that unless it listens on loopback
//! (or is explicitly told it is insecure). Nothing here fails open on a database error: an
//! error is an error.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use uuid::Uuid;

use crate::app::{ActAs, AppState};
use crate::error::{AppError, AppResult};
pub use crate::secrets::hash_token;
use crate::secrets::same_secret;
use crate::store::{tokens, DbConnection, Tx};

/// The token of `Authorization: Bearer <token>`. The scheme name is case-insensitive
/// (RFC 9110 §11.1, RFC 6750 §2.1), and any run of spaces may separate it from the token.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `?token=` — only for the WebSocket, where browsers cannot set headers.
pub fn query_token(req: &HttpRequest) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Whether `token` is `ADMIN_TOKEN` (constant-time); `false` when either is absent.
pub fn is_admin_token(state: &AppState, token: Option<&str>) -> bool {
    match (&state.config.admin_token, token) {
        (Some(expected), Some(given)) => same_secret(expected.expose(), given),
        _ => false,
    }
}

/// Whether the server runs without an admin token (loopback-only open mode).
pub fn is_open(state: &AppState) -> bool {
    state.config.admin_token.is_none()
}

/// The person a route's requirement admitted (see `principal::enforce`), for agent routes that
/// a person may also call (the A2A proxy without `X-Workspace-ID`, a canvas socket): in open
/// mode anyone is the local admin, as before people existed, whatever token they send; 401
/// otherwise when the caller showed no person's credential.
pub fn require_person(
    req: &HttpRequest,
    state: &AppState,
) -> AppResult<super::principal::Principal> {
    if let Some(person) = super::principal::of_request(req) {
        return Ok(person);
    }
    if is_open(state) {
        return Ok(super::principal::Principal::local());
    }
    Err(AppError::Unauthorized(
        if bearer(req).is_some() {
            "invalid admin token or API key"
        } else {
            "admin token or API key required"
        }
        .into(),
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// Who passed [`authorize_blocking`].
pub enum Caller {
    /// The admin token, a person the route admitted, or anyone in open mode (`Read`/`Write`).
    Admin,
    /// A workspace proven by its token.
    Workspace(Uuid),
    /// An agent call without credentials, allowed in open mode for a workspace that holds no
    /// token yet (it gets one from its first register).
    Anonymous,
}

/// What a "workspace or admin" call does.
///
/// Whoever holds admin access — the admin token, or anyone while the server runs open (open
/// mode is loopback-only unless explicitly allowed, and mutating browser requests are held to
/// the allowed origins at the edge) — passes every `Read` and `Write` check: the canvas *is*
/// the admin. Only `Agent` checks, which identify the caller as a workspace's own agent, keep
/// asking for that workspace's token in open mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading a workspace's data (activity lists, peers, secret names, approvals).
    Read,
    /// Changing a workspace's data (activity, notify, secrets, update-card, approvals).
    Write,
    /// Acting *as* the workspace's agent (heartbeat, an agent WebSocket, discover or the A2A
    /// proxy with `X-Workspace-ID`): the admin token or the workspace's own token; without a
    /// token only while the workspace holds no live token and the server runs open (the
    /// reference's lazy bootstrap: an agent gets its first token from register).
    Agent,
}

/// What a request presents, read once from it so the token check can run inside the same
/// blocking call as the work it guards.
#[derive(Clone, Debug)]
pub struct Credentials {
    token: Option<String>,
    admin: bool,
    open: bool,
}

impl Credentials {
    /// `admin` is a person who showed a credential whose role the route admits (the
    /// middleware refused everyone else): the admin token, an API key, a session.
    pub fn from_request(req: &HttpRequest, state: &AppState) -> Credentials {
        let person = super::principal::of_request(req).filter(|p| p.is_authenticated_person());
        // A person's key is not a workspace token: never look it up as one.
        let token = bearer(req).filter(|_| person.is_none()).map(str::to_string);
        Credentials {
            admin: person.is_some(),
            open: is_open(state),
            token,
        }
    }
}

/// Token hash → workspace, remembered after a successful lookup, for the heartbeat fast path
/// only. An entry is never invalidated: that is safe there because a token is only revoked
/// when its workspace is removed, and the fast path's guarded UPDATE never touches a removed
/// workspace (it falls through to the full path, which answers 410). Nothing else may trust it.
#[derive(Default)]
pub struct HeartbeatTokens {
    owners: std::sync::Mutex<HashMap<String, Uuid>>,
}

/// Entries kept before the map starts over (a bound, not a working-set size: one per agent).
const HEARTBEAT_TOKENS_MAX: usize = 100_000;

impl HeartbeatTokens {
    /// The workspace whose token hashes to `hash`, if remembered.
    fn owner(&self, hash: &str) -> Option<Uuid> {
        self.lock().get(hash).copied()
    }

    fn remember(&self, hash: String, owner: Uuid) {
        let mut owners = self.lock();
        if owners.len() >= HEARTBEAT_TOKENS_MAX {
            owners.clear();
        }
        owners.insert(hash, owner);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Uuid>> {
        self.owners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How a heartbeat proves it comes from `workspace_id`'s agent on the batched path:
/// `Some(None)` proven already (the admin token, or a token remembered for it),
/// `Some(Some(lookup))` a token to look up on the batch's connection, `None` no token (the
/// ordinary path decides: open mode's tokenless bootstrap, or 401).
pub fn heartbeat_proof(
    app: &std::sync::Arc<AppState>,
    credentials: &Credentials,
    workspace_id: Uuid,
) -> Option<Option<crate::store::batcher::Proof>> {
    if credentials.admin {
        return Some(None);
    }
    let hash = hash_token(credentials.token.as_ref()?);
    if app.heartbeat_tokens.owner(&hash) == Some(workspace_id) {
        return Some(None);
    }
    let app = std::sync::Arc::clone(app);
    Some(Some(Box::new(move |c| {
        heartbeat_token_proves_workspace(c, &app.heartbeat_tokens, hash, workspace_id)
    })))
}

/// Whether a token (by its hash) is `workspace_id`'s own, looked up in the database and
/// remembered in `known` when it is. `false` means "not proven here", not "refused":
/// `authorize_blocking` gives the full answer.
pub fn heartbeat_token_proves_workspace(
    conn: &mut DbConnection,
    known: &HeartbeatTokens,
    hash: String,
    workspace_id: Uuid,
) -> diesel::QueryResult<bool> {
    let proven = tokens::workspace_of(conn, &hash)? == Some(workspace_id);
    if proven {
        known.remember(hash, workspace_id);
    }
    Ok(proven)
}

/// Authorizes a call on behalf of `workspace_id` ("workspace or admin" routes).
///
/// - The admin token passes, as [`Caller::Admin`].
/// - A bearer token that is not the admin's must be `workspace_id`'s own live token (401
///   `invalid workspace auth token` otherwise), also in open mode.
/// - Without a token: open mode is admin access for `Read` and `Write`; for `Agent` it passes
///   only while the workspace holds no live token (401 `missing workspace auth token` once it
///   does). With an admin token configured, no token is 401 `missing workspace auth token`.
pub fn authorize_blocking(
    conn: &mut DbConnection,
    credentials: &Credentials,
    workspace_id: Uuid,
    access: Access,
) -> AppResult<Caller> {
    if credentials.admin {
        return Ok(Caller::Admin);
    }
    let missing = || AppError::Unauthorized("missing workspace auth token".into());
    match &credentials.token {
        Some(token) => match tokens::workspace_of(conn, &hash_token(token))? {
            Some(owner) if owner == workspace_id => Ok(Caller::Workspace(owner)),
            _ => Err(AppError::Unauthorized(
                "invalid workspace auth token".into(),
            )),
        },
        None if credentials.open && access != Access::Agent => Ok(Caller::Admin),
        None if tokens::has_live_token(conn, workspace_id)? => Err(missing()),
        None if credentials.open => Ok(Caller::Anonymous),
        None => Err(missing()),
    }
}

/// A call on a workspace's behalf ("workspace or admin" routes), read from the request
/// without touching the database: the workspace the call is for, what the caller presented,
/// and whom the command names as its actor. [`OnBehalf::read`] and [`OnBehalf::execute`]
/// check the caller inside the same blocking call as the work (issue 13 item 1: one pool trip
/// or one batcher command per request, never an auth trip before it), the way crates.io runs
/// auth inside its `interact` closure.
///
/// As an extractor it reads the workspace from the path's `{id}` (400 `invalid workspace ID`
/// when that is not a UUID); [`OnBehalf::new`] takes it from elsewhere (a header, a body).
/// Work that can refuse its input before the trip should hand the verdict into the closure
/// (`move |c| { let input = input?; … }`), so a caller without access hears 401, not how its
/// input was wrong.
pub struct OnBehalf {
    /// The workspace the call is for.
    pub workspace: Uuid,
    credentials: Credentials,
    act_as: ActAs,
    state: web::Data<AppState>,
}

impl OnBehalf {
    /// The call `req` makes for `workspace`.
    pub fn new(req: &HttpRequest, state: &web::Data<AppState>, workspace: Uuid) -> OnBehalf {
        OnBehalf {
            workspace,
            credentials: Credentials::from_request(req, state),
            act_as: ActAs::caller(req, workspace),
            state: state.clone(),
        }
    }

    /// The application state, for work before or after the trip.
    pub fn state(&self) -> &web::Data<AppState> {
        &self.state
    }

    /// Checks the caller on `conn` (see [`authorize_blocking`]), for closures that must answer
    /// something else first (404/410 before 401 on the registry).
    pub fn authorize(&self, conn: &mut DbConnection, access: Access) -> AppResult<Caller> {
        authorize_blocking(conn, &self.credentials, self.workspace, access)
    }

    /// Runs `query` on the blocking pool after checking the caller for `access`, in one trip.
    /// Errors: the check's 401, then whatever `query` returns.
    pub async fn read<T, F>(self, access: Access, query: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> AppResult<T> + Send + 'static,
    {
        let (credentials, workspace) = (self.credentials, self.workspace);
        self.state
            .read(move |c| {
                authorize_blocking(c, &credentials, workspace, access)?;
                query(c)
            })
            .await
    }

    /// Runs `command` in the batcher's command lane after checking the caller for `access`
    /// inside the same transaction; its events and activity rows name the caller (a person
    /// the route admitted, else the workspace's agent). Errors: the check's 401, then the
    /// command's.
    pub async fn execute<T, F>(self, access: Access, command: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> AppResult<T> + Send + 'static,
    {
        self.execute_checked(access, false, command).await
    }

    /// [`OnBehalf::execute`] for an agent's own workspace (the registry): 404 for an unknown
    /// workspace and 410 for a removed one come before the caller check, because a removed
    /// workspace's tokens are revoked and its agent must learn it is gone, not that it is
    /// unauthorized.
    pub async fn execute_on_agent_workspace<T, F>(self, access: Access, command: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> AppResult<T> + Send + 'static,
    {
        self.execute_checked(access, true, command).await
    }

    async fn execute_checked<T, F>(
        self,
        access: Access,
        gone_first: bool,
        command: F,
    ) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> AppResult<T> + Send + 'static,
    {
        let (credentials, workspace) = (self.credentials, self.workspace);
        self.state
            .execute_as(self.act_as, move |tx| {
                if gone_first {
                    crate::commands::registry::agent_workspace(tx.conn(), workspace)?;
                }
                authorize_blocking(tx.conn(), &credentials, workspace, access)?;
                command(tx)
            })
            .await
    }
}

/// What a register call (`POST /registry/register`) shows, read from the request without a
/// trip; [`RegisterProof::check`] weighs it inside the register command.
pub enum RegisterProof {
    /// A person's credential that the route admitted (the admin token, an admin's key or
    /// session).
    Person,
    /// No credential, in open mode: the command decides (a first register mints the token;
    /// once the workspace holds one, 401).
    Nothing,
    /// No credential in token mode: 401. Anyone who knew a fresh workspace's id could
    /// otherwise claim its agent (and with it its secrets and the chat sent to it), so whoever
    /// provisions the agent registers it with an admin credential and hands it the token.
    MissingInTokenMode,
    /// Any other bearer token, by its hash: it must be the workspace's own.
    Token(String),
}

impl RegisterProof {
    /// Reads the request's bearer token and the person the middleware admitted.
    pub fn of_request(req: &HttpRequest, state: &AppState) -> RegisterProof {
        let person = super::principal::of_request(req).filter(|p| p.is_authenticated_person());
        match bearer(req) {
            _ if person.is_some() => RegisterProof::Person,
            None if is_open(state) => RegisterProof::Nothing,
            None => RegisterProof::MissingInTokenMode,
            Some(token) => RegisterProof::Token(hash_token(token)),
        }
    }

    /// Whether the caller proved itself for `workspace` (a person, or the workspace's own
    /// token): `false` without a credential in open mode; 401 `missing workspace auth token
    /// (…)` without one in token mode, 401 `invalid workspace auth token` for any other token.
    pub fn check(&self, conn: &mut DbConnection, workspace: Uuid) -> AppResult<bool> {
        match self {
            RegisterProof::Person => Ok(true),
            RegisterProof::Nothing => Ok(false),
            RegisterProof::MissingInTokenMode => Err(AppError::Unauthorized(
                "missing workspace auth token (in token mode an agent's first registration \
                 needs an admin credential)"
                    .into(),
            )),
            RegisterProof::Token(hash) => {
                if tokens::workspace_of(conn, hash)? != Some(workspace) {
                    return Err(AppError::Unauthorized(
                        "invalid workspace auth token".into(),
                    ));
                }
                Ok(true)
            }
        }
    }
}

impl FromRequest for OnBehalf {
    type Error = AppError;
    type Future = std::future::Ready<AppResult<OnBehalf>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(on_behalf_of_path(req))
    }
}

fn on_behalf_of_path(req: &HttpRequest) -> AppResult<OnBehalf> {
    let super::WorkspacePath(workspace) = super::WorkspacePath::extract(req).into_inner()?;
    Ok(OnBehalf::new(req, &app_state(req)?, workspace))
}

/// The application state registered with the server (always there; 500 if not).
pub fn app_state(req: &HttpRequest) -> AppResult<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no application state")))
}
