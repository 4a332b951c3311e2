//! HTTP: one file per resource. Handlers extract, call a command, map the result.

pub mod activity;
pub mod agents;
pub mod auth;
pub mod body;
pub mod canvas;
pub mod drain;
pub mod events;
pub mod health;
pub mod rate_limit;
pub mod registry;
pub mod secrets;
pub mod static_files;
pub mod workspaces;
pub mod ws;

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::web;

use crate::config::Config;
use crate::error::AppError;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .app_data(
            web::QueryConfig::default().error_handler(|err, _| {
                AppError::BadRequest(format!("invalid query: {err}")).into()
            }),
        )
        .app_data(
            web::PathConfig::default().error_handler(|err, _| {
                AppError::BadRequest(format!("invalid path: {err}")).into()
            }),
        )
        .route("/health", web::get().to(health::health))
        .route("/metrics", web::get().to(health::metrics))
        .route("/ws", web::get().to(ws::connect))
        .route("/workspaces", web::post().to(workspaces::create))
        .route("/workspaces", web::get().to(workspaces::list))
        .route("/workspaces/{id}", web::get().to(workspaces::get))
        .route("/workspaces/{id}", web::patch().to(workspaces::patch))
        .route("/workspaces/{id}", web::delete().to(workspaces::delete))
        .route("/workspaces/{id}/pause", web::post().to(workspaces::pause))
        .route(
            "/workspaces/{id}/resume",
            web::post().to(workspaces::resume),
        )
        .route("/workspaces/{id}/activity", web::get().to(activity::list))
        .route("/workspaces/{id}/activity", web::post().to(activity::log))
        .route("/workspaces/{id}/notify", web::post().to(activity::notify))
        .route("/workspaces/{id}/agent", web::post().to(agents::assign))
        .route("/workspaces/{id}/agent", web::patch().to(agents::replace))
        .route("/workspaces/{id}/agent", web::delete().to(agents::remove))
        .route(
            "/workspaces/{id}/agent/move",
            web::post().to(agents::move_agent),
        )
        .route("/registry/register", web::post().to(registry::register))
        .route("/registry/heartbeat", web::post().to(registry::heartbeat))
        .route(
            "/registry/update-card",
            web::post().to(registry::update_card),
        )
        .route(
            "/registry/check-access",
            web::post().to(registry::check_access),
        )
        .route("/registry/discover/{id}", web::get().to(registry::discover))
        .route("/registry/{id}/peers", web::get().to(registry::peers))
        .route(
            "/workspaces/{id}/secrets",
            web::get().to(secrets::list_workspace),
        )
        .route(
            "/workspaces/{id}/secrets",
            web::post().to(secrets::put_workspace),
        )
        .route(
            "/workspaces/{id}/secrets",
            web::put().to(secrets::put_workspace),
        )
        .route(
            "/workspaces/{id}/secrets/{key}",
            web::put().to(secrets::put_workspace_key),
        )
        .route(
            "/workspaces/{id}/secrets/{key}",
            web::delete().to(secrets::delete_workspace),
        )
        .route("/settings/secrets", web::get().to(secrets::list_global))
        .route("/settings/secrets", web::post().to(secrets::put_global))
        .route("/settings/secrets", web::put().to(secrets::put_global))
        .route(
            "/settings/secrets/{key}",
            web::put().to(secrets::put_global_key),
        )
        .route(
            "/settings/secrets/{key}",
            web::delete().to(secrets::delete_global),
        )
        .route("/canvas/viewport", web::get().to(canvas::get_viewport))
        .route("/canvas/viewport", web::put().to(canvas::put_viewport))
        .route("/events", web::get().to(events::list_all))
        .route(
            "/events/{workspace_id}",
            web::get().to(events::list_for_workspace),
        )
        .route("/", web::get().to(static_files::index))
        .route("/app.js", web::get().to(static_files::app_js))
        .route("/app.css", web::get().to(static_files::app_css))
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
            allowed.iter().any(|o| o == origin) || is_same_origin(origin, head)
        })
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-workspace-id"),
        ])
        .supports_credentials()
        .max_age(3600)
}

/// An `Origin` naming the host the request was sent to (the canvas this server serves).
pub fn is_same_origin(origin: &str, head: &actix_web::dev::RequestHead) -> bool {
    let Some(host) = head
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        == Some(host)
}

/// Parses a workspace id from the path: 400 `invalid workspace ID` if it is not a UUID.
pub fn workspace_id(raw: &str) -> Result<uuid::Uuid, AppError> {
    crate::domain::ids::parse_uuid(raw).ok_or_else(AppError::invalid_workspace_id)
}
