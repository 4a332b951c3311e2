use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::AppState;

/// Liveness and readiness: 503 while the database cannot answer.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let database_ok = match state.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            false
        }
    };
    let body = json!({
        "status": if database_ok { "ok" } else { "degraded" },
        "database": if database_ok { "ok" } else { "unavailable" },
        "database_backend": state.store.backend_name(),
        "backplane": state.backplane.name(),
        "backplane_connected": state.backplane.is_connected(),
        "instance_id": state.config.instance_id,
        "sessions": state.hub.session_count(),
        "seq": state.hub.delivered(),
    });
    if database_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (connections, idle) = state.store.pool_state();
    metrics::gauge!("canopy_db_pool_connections").set(connections as f64);
    metrics::gauge!("canopy_db_pool_idle_connections").set(idle as f64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
