//! HTTP: one file per resource. Handlers extract, call a command, map the result.

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
pub mod openapi;
pub mod rate_limit;
pub mod registry;
pub mod request_id;
pub mod secrets;
pub mod static_files;
pub mod transport;
pub mod workspaces;
pub mod ws;

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::web;

use crate::config::Config;
use crate::error::AppError;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API's route table: the one place an API route is added. Each entry is
/// `([methods], "/path", handler)`; `configure` registers every entry with actix, and
/// [`openapi::ApiDoc`] lists every handler (each must carry `#[utoipa::path]` with the same
/// method and path, or the build fails / `tests/api/openapi.rs` fails). Static files are not
/// API routes and are registered in `configure` directly.
macro_rules! with_api_routes {
    ($callback:ident) => {
        $callback! {
            ([get], "/health", health::health),
            ([get], "/metrics", health::metrics),
            ([get], "/openapi.json", openapi::document),
            ([get], "/ws", ws::connect),
            ([post], "/workspaces", workspaces::create),
            ([get], "/workspaces", workspaces::list),
            ([get], "/workspaces/{id}", workspaces::get),
            ([patch], "/workspaces/{id}", workspaces::patch),
            ([delete], "/workspaces/{id}", workspaces::delete),
            ([post], "/workspaces/{id}/pause", workspaces::pause),
            ([post], "/workspaces/{id}/resume", workspaces::resume),
            ([get], "/workspaces/{id}/activity", activity::list),
            ([post], "/workspaces/{id}/activity", activity::log),
            ([post], "/workspaces/{id}/notify", activity::notify),
            ([post], "/workspaces/{id}/a2a", a2a::proxy),
            ([post], "/workspaces/{id}/approvals", approvals::create),
            ([get], "/workspaces/{id}/approvals", approvals::list),
            ([post], "/workspaces/{id}/approvals/{approval_id}/decide", approvals::decide),
            ([get], "/approvals/pending", approvals::list_pending),
            ([post], "/workspaces/{id}/agent", agents::assign),
            ([patch], "/workspaces/{id}/agent", agents::replace),
            ([delete], "/workspaces/{id}/agent", agents::remove),
            ([post], "/workspaces/{id}/agent/move", agents::move_agent),
            ([post], "/registry/register", registry::register),
            ([post], "/registry/heartbeat", registry::heartbeat),
            ([post], "/registry/update-card", registry::update_card),
            ([post], "/registry/check-access", registry::check_access),
            ([get], "/registry/discover/{id}", registry::discover),
            ([get], "/registry/{id}/peers", registry::peers),
            ([get], "/workspaces/{id}/secrets", secrets::list_workspace),
            ([post, put], "/workspaces/{id}/secrets", secrets::put_workspace),
            ([put], "/workspaces/{id}/secrets/{key}", secrets::put_workspace_key),
            ([delete], "/workspaces/{id}/secrets/{key}", secrets::delete_workspace),
            ([get], "/settings/secrets", secrets::list_global),
            ([post, put], "/settings/secrets", secrets::put_global),
            ([put], "/settings/secrets/{key}", secrets::put_global_key),
            ([delete], "/settings/secrets/{key}", secrets::delete_global),
            ([get], "/canvas/viewport", canvas::get_viewport),
            ([put], "/canvas/viewport", canvas::put_viewport),
            ([get], "/events", events::list_all),
            ([get], "/events/{workspace_id}", events::list_for_workspace),
        }
    };
}
pub(crate) use with_api_routes;

macro_rules! route_table {
    ($(([$($method:ident),+], $path:literal, $module:ident :: $handler:ident)),* $(,)?) => {
        /// Every API route as `(method, path)`: the method in lower case, the path as actix and
        /// OpenAPI both write it (`/workspaces/{id}`). Built from the route table.
        pub const API_ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),*];

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
