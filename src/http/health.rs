//! `GET /health` (liveness and readiness) and `GET /metrics` (Prometheus).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;

/// `GET /health`: this instance and what it is connected to.
#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok`, or `degraded` while the database cannot answer.
    pub status: &'static str,
    /// `ok` or `unavailable`.
    pub database: &'static str,
    /// `sqlite` or `postgres`.
    pub database_backend: &'static str,
    /// `local` or `redis`.
    pub backplane: &'static str,
    /// Whether the backplane (Redis) answers; always `true` for the local one.
    pub backplane_connected: bool,
    /// This instance's id (`INSTANCE_ID`, or generated at start).
    pub instance_id: String,
    /// Open WebSocket sessions on this instance.
    pub sessions: usize,
    /// The newest seq this instance has delivered to its sockets.
    pub seq: i64,
    /// The newest seq committed to the stream (the database's head; may be ahead of `seq` for a
    /// few milliseconds). Absent while the database cannot answer.
    pub head_seq: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    summary = "Liveness and readiness",
    responses(
        (status = 200, description = "Healthy", body = HealthBody),
        (status = 503, description = "The database cannot answer", body = HealthBody),
    ),
)]
/// Liveness and readiness: 503 while the database cannot answer.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let head_seq = match state.store.ping().await {
        Ok(()) => state.read(crate::queries::events::head_seq).await.ok(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            None
        }
    };
    let database_ok = head_seq.is_some();
    let body = HealthBody {
        status: if database_ok { "ok" } else { "degraded" },
        database: if database_ok { "ok" } else { "unavailable" },
        database_backend: state.store.backend_name(),
        backplane: state.backplane.name(),
        backplane_connected: state.backplane.is_connected(),
        instance_id: state.config.instance_id.clone(),
        sessions: state.hub.session_count(),
        seq: state.hub.delivered(),
        head_seq,
    };
    if database_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
    ),
)]
/// `GET /metrics`: the Prometheus text exposition, with the pool gauges refreshed.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (connections, idle) = state.store.pool_state();
    metrics::gauge!("canopy_db_pool_connections").set(connections as f64);
    metrics::gauge!("canopy_db_pool_idle_connections").set(idle as f64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
