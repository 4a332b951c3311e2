//! Draining at shutdown. From the moment a stop begins, a WebSocket upgrade is refused with
//! `503` (`Retry-After: 1`, `Connection: close`) instead of being handed a socket that would be
//! closed again at once: a canvas reconnecting after its 1001 goes to another instance. This
//! covers upgrades that arrive on keep-alive connections opened before the stop; new
//! connections are not accepted at all (see `app::StopHandle::stop`).

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::AppState;

/// Seconds a refused client is told to wait (another instance can take it at once).
pub const DRAIN_RETRY_AFTER_SECONDS: u64 = 1;

/// Whether this instance is shutting down. Set once, never cleared.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
}

impl Drain {
    /// Starts draining: from now on WebSocket upgrades are refused.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether a stop has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// The middleware (wrapped around every route): while draining, `GET /ws` is answered with 503
/// and `Connection: close` before any work.
pub async fn refuse_upgrades_while_draining(
    state: web::Data<AppState>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.path() == "/ws" && state.drain.is_draining() {
        let response = HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, DRAIN_RETRY_AFTER_SECONDS.to_string()))
            .force_close()
            .json(json!({ "error": "server shutting down" }));
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}
