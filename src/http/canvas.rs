//! The shared canvas: its viewport, who has it open, and Arrange.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::body::{FieldLimit, Json, JsonBody};
use super::openapi::{BodyRefused, DbDown, ErrorBody, InputRefused, StatusBody, TokenRefused};
use super::principal::AsPerson;
use crate::app::AppState;
use crate::commands::layout::{self as layout_commands, Moved};
use crate::domain::events::json_number;
use crate::domain::ids::parse_uuid;
use crate::domain::validation::{limits, parse_viewport_offset, parse_zoom, FieldError};
use crate::error::AppResult;
use crate::queries::canvas::Viewport;

#[utoipa::path(
    get,
    path = "/canvas/viewport",
    tag = "canvas",
    summary = "The saved canvas viewport",
    responses(
        (status = 200, description = "`{\"x\", \"y\", \"zoom\"}`", body = ViewportBody),
        TokenRefused, DbDown,
    ),
)]
/// `GET /canvas/viewport`: `{"x", "y", "zoom"}`, the default until someone saves one.
pub async fn get_viewport(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let v = state.read(crate::queries::canvas::viewport).await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "x": json_number(v.x), "y": json_number(v.y), "zoom": json_number(v.zoom) })))
}

#[derive(Deserialize, ToSchema)]
/// The body of `PUT /canvas/viewport`: `x`, `y` (px) and `zoom`.
pub struct ViewportBody {
    x: f64,
    y: f64,
    #[schema(exclusive_minimum = 0, maximum = 10)]
    zoom: f64,
}

impl JsonBody for ViewportBody {
    const LIMITS: &'static [FieldLimit] = &[];
}

#[utoipa::path(
    put,
    path = "/canvas/viewport",
    tag = "canvas",
    summary = "Save the canvas viewport (zoom in (0, 10])",
    request_body(content = ViewportBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"status\": \"saved\"}`", body = StatusBody),
        InputRefused, TokenRefused, BodyRefused, DbDown,
    ),
)]
/// `PUT /canvas/viewport`: saves the shared viewport; `{"status": "saved"}`.
pub async fn put_viewport(
    person: AsPerson,
    Json(body): Json<ViewportBody>,
) -> AppResult<HttpResponse> {
    let viewport = Viewport {
        x: parse_viewport_offset("x", body.x)?,
        y: parse_viewport_offset("y", body.y)?,
        zoom: parse_zoom(body.zoom)?,
    };
    person
        .execute(move |tx| crate::commands::canvas::save_viewport(tx, viewport))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "saved" })))
}

#[utoipa::path(
    get,
    path = "/canvas/presence",
    tag = "canvas",
    summary = "Who has a canvas open now, on any instance, longest present first",
    responses(
        (status = 200, description = "`[{\"actor\":{\"type\",\"id\",\"name\"},\"since\"}]`", body = Vec<crate::realtime::presence::Present>),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "Agents do not see presence", body = ErrorBody),
    ),
)]
/// `GET /canvas/presence`: who has a canvas open, on any instance (no database trip).
pub async fn presence(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.presence.list()))
}

/// `POST /canvas/arrange`: `{"root_id": "<uuid>"}` arranges that workspace's subtree;
/// `{}` or `{"root_id": null}` every tree.
#[derive(Deserialize, ToSchema)]
pub struct ArrangeBody {
    #[schema(format = Uuid)]
    root_id: Option<String>,
}

impl JsonBody for ArrangeBody {
    /// `null` (like leaving it out) arranges the whole canvas.
    const NULLABLE: &'static [&'static str] = &["root_id"];
    const LIMITS: &'static [FieldLimit] = &[("root_id", limits::ID)];
}

/// The answer of `POST /canvas/arrange`: the workspaces that moved, at their new absolute
/// positions, oldest first.
#[derive(serde::Serialize, ToSchema)]
pub struct ArrangeResponse {
    moved: Vec<Moved>,
}

#[utoipa::path(
    post,
    path = "/canvas/arrange",
    tag = "canvas",
    summary = "Lay out a subtree (or every tree) as a tidy org chart, in one commit",
    description = "The subtree's root keeps its place (every tree: the trees stand side by side \
        from the top-left of the current content); a parent's head is centred above the row of \
        its children's areas; a collapsed workspace is a bare card whose hidden descendants move \
        with it; neighbours that are in the way make room. Every moved workspace gets its \
        WORKSPACE_LAYOUT_CHANGED in the same commit (contiguous seqs); an unmoved one gets none.",
    request_body(content = ArrangeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"moved\": [{\"id\", \"x\", \"y\"}]}`: absolute positions of the workspaces that moved", body = ArrangeResponse),
        (status = 404, description = "`root_id` is not a live workspace: `{\"error\", \"root_id\"}`", body = ErrorBody),
        (status = 422, description = "A tree to lay out is deeper than 64 levels (rows made before the bound): `{\"error\", \"root_id\"}` naming its root; nothing moved", body = ErrorBody),
        (status = 403, description = "The caller may not change the canvas (a viewer, an agent)", body = ErrorBody),
        InputRefused, TokenRefused, BodyRefused, DbDown,
    ),
)]
#[tracing::instrument(skip_all)]
/// `POST /canvas/arrange`: lays out one tree or all of them; `{"moved": [{"id", "x", "y"}]}`.
pub async fn arrange(person: AsPerson, Json(body): Json<ArrangeBody>) -> AppResult<HttpResponse> {
    let root = body
        .root_id
        .as_deref()
        .map(|raw| {
            parse_uuid(raw).ok_or_else(|| FieldError::new("root_id", "must be a workspace UUID"))
        })
        .transpose()?;
    let moved = person
        .execute(move |tx| layout_commands::arrange(tx, root))
        .await?;
    tracing::info!(root_id = ?root, moved = moved.len(), "canvas arranged");
    Ok(HttpResponse::Ok().json(ArrangeResponse { moved }))
}
