//! HTTP: one file per resource. Handlers extract, call a command, map the result.

#![warn(missing_docs)]

pub mod a2a;
pub mod activity;
pub mod agents;
pub mod approvals;
pub mod auth;
pub mod body;
pub mod boundary;
pub mod canvas;
pub mod drain;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod keys;
pub mod openapi;
pub mod principal;
pub mod rate_limit;
pub mod registry;
pub mod request_id;
pub mod secrets;
pub mod session;
pub mod static_files;
pub mod transport;
pub mod workspaces;
pub mod ws;

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::web;

use crate::config::Config;
use crate::domain::people::Role;
use crate::error::AppError;
use principal::Requirement;

// The requirements the route table names (short, so the table stays one line per route).
const PUBLIC: Requirement = Requirement::Public;
const VIEWER: Requirement = Requirement::Role(Role::Viewer);
const EDITOR: Requirement = Requirement::Role(Role::Editor);
const ADMIN: Requirement = Requirement::Role(Role::Admin);
const AGENT_OR_VIEWER: Requirement = Requirement::AgentOr(Role::Viewer);
const AGENT_OR_EDITOR: Requirement = Requirement::AgentOr(Role::Editor);
const AGENT_OR_ADMIN: Requirement = Requirement::AgentOr(Role::Admin);

/// What the route `(method, pattern)` requires; `None` for anything not in the route table.
/// `method` is upper case as on the wire (`GET`), `pattern` as actix matched it.
pub fn requirement_of(method: &str, pattern: &str) -> Option<Requirement> {
    ROUTE_REQUIREMENTS
        .iter()
        .find(|(m, p, _)| *p == pattern && m.eq_ignore_ascii_case(method))
        .map(|(_, _, r)| *r)
}

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API's route table: the one place an API route is added. Each entry is
/// `([methods], "/path", handler, requirement)`, the requirement being who may call it
/// ([`principal::Requirement`], enforced for every route by [`principal::enforce`]); `configure` registers every entry with actix, and
/// [`openapi::ApiDoc`] lists every handler (each must carry `#[utoipa::path]` with the same
/// method and path, or the build fails / `tests/api/openapi.rs` fails). Static files are not
/// API routes and are registered in `configure` directly.
macro_rules! with_api_routes {
    ($callback:ident) => {
        $callback! {
            ([get], "/health", health::health, PUBLIC),
            ([get], "/metrics", health::metrics, PUBLIC),
            ([get], "/openapi.json", openapi::document, PUBLIC),
            ([get], "/ws", ws::connect, AGENT_OR_VIEWER),
            ([post], "/workspaces", workspaces::create, EDITOR),
            ([get], "/workspaces", workspaces::list, VIEWER),
            ([get], "/workspaces/{id}", workspaces::get, VIEWER),
            ([patch], "/workspaces/{id}", workspaces::patch, EDITOR),
            ([delete], "/workspaces/{id}", workspaces::delete, ADMIN),
            ([post], "/workspaces/{id}/pause", workspaces::pause, EDITOR),
            ([post], "/workspaces/{id}/resume", workspaces::resume, EDITOR),
            ([get], "/workspaces/{id}/activity", activity::list, AGENT_OR_VIEWER),
            ([post], "/workspaces/{id}/activity", activity::log, AGENT_OR_EDITOR),
            ([post], "/workspaces/{id}/notify", activity::notify, AGENT_OR_EDITOR),
            ([post], "/workspaces/{id}/a2a", a2a::proxy, AGENT_OR_EDITOR),
            ([post], "/workspaces/{id}/approvals", approvals::create, AGENT_OR_EDITOR),
            ([get], "/workspaces/{id}/approvals", approvals::list, AGENT_OR_VIEWER),
            ([post], "/workspaces/{id}/approvals/{approval_id}/decide", approvals::decide, EDITOR),
            ([get], "/approvals/pending", approvals::list_pending, VIEWER),
            ([post], "/workspaces/{id}/agent", agents::assign, EDITOR),
            ([patch], "/workspaces/{id}/agent", agents::replace, EDITOR),
            ([delete], "/workspaces/{id}/agent", agents::remove, ADMIN),
            ([post], "/workspaces/{id}/agent/move", agents::move_agent, EDITOR),
            ([post], "/registry/register", registry::register, AGENT_OR_ADMIN),
            ([post], "/registry/heartbeat", registry::heartbeat, AGENT_OR_ADMIN),
            ([post], "/registry/update-card", registry::update_card, AGENT_OR_ADMIN),
            ([post], "/registry/check-access", registry::check_access, PUBLIC),
            ([get], "/registry/discover/{id}", registry::discover, AGENT_OR_ADMIN),
            ([get], "/registry/{id}/peers", registry::peers, AGENT_OR_VIEWER),
            ([get], "/workspaces/{id}/secrets", secrets::list_workspace, AGENT_OR_ADMIN),
            ([post, put], "/workspaces/{id}/secrets", secrets::put_workspace, AGENT_OR_ADMIN),
            ([put], "/workspaces/{id}/secrets/{key}", secrets::put_workspace_key, AGENT_OR_ADMIN),
            ([delete], "/workspaces/{id}/secrets/{key}", secrets::delete_workspace, AGENT_OR_ADMIN),
            ([get], "/settings/secrets", secrets::list_global, ADMIN),
            ([post, put], "/settings/secrets", secrets::put_global, ADMIN),
            ([put], "/settings/secrets/{key}", secrets::put_global_key, ADMIN),
            ([delete], "/settings/secrets/{key}", secrets::delete_global, ADMIN),
            ([get], "/canvas/viewport", canvas::get_viewport, VIEWER),
            ([put], "/canvas/viewport", canvas::put_viewport, EDITOR),
            ([get], "/canvas/presence", canvas::presence, VIEWER),
            ([post], "/canvas/arrange", canvas::arrange, EDITOR),
            ([get], "/events", events::list_all, VIEWER),
            ([get], "/events/{workspace_id}", events::list_for_workspace, VIEWER),
            ([post], "/keys", keys::create, ADMIN),
            ([get], "/keys", keys::list, ADMIN),
            ([delete], "/keys/{id}", keys::revoke, ADMIN),
            ([post], "/session", session::sign_in, PUBLIC),
            ([get], "/session", session::whoami, VIEWER),
            ([delete], "/session", session::sign_out, PUBLIC),
        }
    };
}
pub(crate) use with_api_routes;

macro_rules! route_table {
    ($(([$($method:ident),+], $path:literal, $module:ident :: $handler:ident, $requirement:ident)),* $(,)?) => {
        /// Every API route as `(method, path)`: the method in lower case, the path as actix and
        /// OpenAPI both write it (`/workspaces/{id}`). Built from the route table.
        pub const API_ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),*];

        /// Every API route with what it requires of its caller: `(method, path, requirement)`.
        pub const ROUTE_REQUIREMENTS: &[(&str, &str, Requirement)] =
            &[$($((stringify!($method), $path, $requirement)),+),*];

        fn register_api_routes(cfg: &mut web::ServiceConfig) {
            $($(cfg.route($path, web::$method().to($module::$handler));)+)*
        }
    };
}
with_api_routes!(route_table);

/// The browser canvas's files (`index.html` at `/`, the others at `/<path under static/>`):
/// served by `configure`, not API routes, not in the document.
pub const STATIC_PATHS: &[&str] = static_files::URLS;

fn register_static_files(cfg: &mut web::ServiceConfig) {
    for file in static_files::FILES {
        cfg.route(file.url, web::get().to(static_files::serve));
    }
}

/// Registers the API routes, the static files and the JSON 404 for everything else, with the
/// body size limit and the path extractor's 400.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .app_data(
            web::PathConfig::default()
                .error_handler(|_, _| AppError::BadRequest("invalid path".into()).into()),
        )
        .configure(register_api_routes)
        .configure(register_static_files)
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(AppError::NotFound("not found".into()))
        }));
}

/// CORS for browser canvases on other origins: the exact requesting origin (never `*`), with
/// credentials, for origins in CORS_ORIGINS or the server's own.
pub fn cors(config: &Config) -> Cors {
    let allowed = config.cors_origins.clone();
    Cors::default()
        .allowed_origin_fn(move |origin, head| {
            let origin = origin.to_str().unwrap_or_default();
            let host = head
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            allowed.iter().any(|o| o == origin) || boundary::is_same_origin(origin, host)
        })
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-molecule-org-slug"),
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-workspace-id"),
            // The A2A proxy's per-request timeout (seconds), as the reference takes it.
            header::HeaderName::from_static("x-timeout"),
            // Versions and retries (README "Edits that cannot clobber", "Retries").
            header::IF_MATCH,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            header::ETAG,
            header::HeaderName::from_static("idempotent-replayed"),
        ])
        // A canvas on another origin can quote the id of a failed request in its report.
        .expose_headers([request_id::REQUEST_ID_HEADER])
        .supports_credentials()
        .max_age(3600)
}

/// Parses a workspace id from the path: 400 `invalid workspace ID` if it is not a UUID.
pub fn workspace_id(raw: &str) -> Result<uuid::Uuid, AppError> {
    crate::domain::ids::parse_uuid(raw).ok_or_else(AppError::invalid_workspace_id)
}

/// The workspace a `/workspaces/{id}/…` route is about, parsed from the path's `{id}`: 400
/// `invalid workspace ID` if it is not a UUID. Put it after a body extractor, so a bad body is
/// reported first.
pub struct WorkspacePath(pub uuid::Uuid);

impl actix_web::FromRequest for WorkspacePath {
    type Error = AppError;
    type Future = std::future::Ready<Result<WorkspacePath, AppError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            workspace_id(req.match_info().get("id").unwrap_or_default()).map(WorkspacePath),
        )
    }
}
