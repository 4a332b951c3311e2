//! `GET /ws`: upgrade, authorize, and hand the socket to its own session task.

use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{require_person, Access, OnBehalf};
use super::openapi::ErrorBody;
use crate::app::AppState;
use crate::domain::people::Role;
use crate::error::{AppError, AppResult};
use crate::realtime::hub::SessionOwner;
use crate::realtime::inbound::Inbound;
use crate::realtime::outbound::{LiveGate, OutboundBody};
use crate::realtime::session::{self, Resume, SessionContext};
use crate::realtime::Subscriber;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
/// `?since=&epoch=`: resume after `since` in stream `epoch` instead of starting live.
pub struct WsQuery {
    since: Option<i64>,
    epoch: Option<String>,
}

#[utoipa::path(
    get,
    path = "/ws",
    tag = "realtime",
    summary = "The event stream (WebSocket upgrade; frames are described in the README)",
    params(WsQuery, ("X-Workspace-ID" = Option<String>, Header, format = Uuid, description = "An agent socket: the workspace it speaks for"), ("token" = Option<String>, Query, description = "Admin token or API key, for clients that cannot set headers (never logged)")),
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket carries CONNECTED, then one event per text frame"),
        (status = 400, description = "Not a WebSocket handshake, or an invalid `since` / `X-Workspace-ID`", body = ErrorBody),
        (status = 401, description = "Admin token (canvas) or workspace token (agent) missing or invalid", body = ErrorBody),
        (status = 403, description = "Origin not allowed", body = ErrorBody),
        (status = 404, description = "`X-Workspace-ID` names no live workspace", body = ErrorBody),
    ),
    security((), ("admin_token" = []), ("workspace_token" = [], "workspace_id" = [])),
)]
/// `GET /ws`: upgrades to the event stream (README "Realtime"). With `X-Workspace-ID`, an agent
/// socket (404 for a workspace that is not live, then its token, in one trip); otherwise a
/// canvas, for a person.
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    query: super::body::Query<WsQuery>,
) -> AppResult<HttpResponse> {
    let mut owner = None;
    let mut present = None;
    let mut drag_actor = None;
    let subscriber = match req.headers().get("X-Workspace-ID") {
        Some(raw) => {
            let id = raw
                .to_str()
                .ok()
                .and_then(crate::domain::ids::parse_uuid)
                .ok_or_else(AppError::invalid_workspace_id)?;
            // One trip: 404 for a workspace that is not live, then the agent's token.
            let call = OnBehalf::new(&req, &state, id);
            state
                .read(move |c| {
                    crate::queries::workspaces::live_row(c, id)?;
                    call.authorize(c, Access::Agent)
                })
                .await?;
            Subscriber::Workspace(id)
        }
        None => {
            // A canvas: a person (viewer or above) by key, session cookie, `?token=` or the
            // admin token; the route's requirement already refused lower roles.
            let person = require_person(&req, &state)?;
            // Open mode's implicit admin is everyone at once, not a person who is here.
            present = person.is_authenticated_person().then(|| person.actor());
            // Drag frames move workspaces: the role PATCH /workspaces/:id requires.
            if person.role >= Some(Role::Editor) {
                drag_actor = Some(person.actor());
            }
            owner = Some(SessionOwner {
                actor: person.actor(),
                key_id: person.key_id,
                session: person.session.clone(),
            });
            Subscriber::Canvas
        }
    };
    let resume = query.since.map(|since| Resume {
        since,
        epoch: query.epoch.clone(),
    });

    // actix-ws answers the handshake and writes the socket (its `Session` and response body),
    // but its reader buffers a frame whole before checking its size (see `realtime::inbound`).
    // So it gets a stand-in payload that never yields, and the real one goes to our reader;
    // the stream actix-ws returns for the stand-in still tells when the response body is
    // dropped, which is all it is kept for.
    let stand_in = web::Payload::from_request(
        &req,
        &mut Payload::Stream {
            payload: Box::pin(futures_util::stream::pending()),
        },
    )
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("websocket payload: {e}")))?;
    let (response, socket, body_closed) = actix_ws::handle(&req, stand_in)
        .map_err(|e| AppError::BadRequest(format!("websocket handshake failed: {e}")))?;
    let inbound = Inbound::new(body.into_inner(), Some(body_closed));
    // Register before the session sends CONNECTED: its seq is what the hub had delivered, and
    // every later event reaches the live queue.
    let (registration, live, volatile) = state.hub.register_socket(subscriber, owner);
    let gate = LiveGate::new();
    let body_gate = Arc::clone(&gate);
    let response = response.map_body(|_, control| {
        BoxBody::new(OutboundBody::new(control, live, body_gate).with_volatile(volatile))
    });
    let ctx = Arc::new(SessionContext {
        hub: Arc::clone(&state.hub),
        store: state.store.clone(),
        instance_id: state.config.instance_id.clone(),
        epoch: state.epoch.clone(),
        drag_actor,
    });
    // Reported after the registration, so the PRESENCE_JOINED it causes reaches this socket
    // too; the guard reports the close when the session ends.
    let presence = present.map(|actor| state.presence.opened(actor));
    // The message stream is !Send: the session lives on the worker that accepted it.
    actix_web::rt::spawn(async move {
        session::run(ctx, subscriber, resume, registration, gate, socket, inbound).await;
        drop(presence);
    });
    Ok(response)
}
