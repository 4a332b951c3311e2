//! The structural log: `GET /events` and `GET /events/:workspace_id`, newest first, in pages.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::body::Query;
use super::openapi::{DbDown, InputRefused, NoWorkspace, PathRefused, TokenRefused};
use super::workspace_id;
use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::queries::events::{self as queries, Page, StructureEvent};

/// Events listed when `?limit=` is absent.
pub const DEFAULT_EVENTS_LIMIT: i64 = 100;
/// Most events one page holds (a larger `limit` is 400).
pub const MAX_EVENTS_LIMIT: i64 = 1000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
/// A page: `limit`, `before_seq` (exclusive), `actor`.
pub struct EventsQuery {
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    before_seq: Option<i64>,
    /// Only events caused by this actor (its `id`: a key id, `admin`, `local`, a workspace id
    /// for its agent, or a system job such as `liveness`).
    #[param(max_length = 255)]
    actor: Option<String>,
}

fn limit(query: &EventsQuery) -> AppResult<i64> {
    match query.limit {
        None => Ok(DEFAULT_EVENTS_LIMIT),
        Some(n) if (1..=MAX_EVENTS_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(AppError::BadRequest(format!(
            "limit: must be from 1 to {MAX_EVENTS_LIMIT}"
        ))),
    }
}

async fn page(
    state: &AppState,
    workspace: Option<uuid::Uuid>,
    query: &EventsQuery,
) -> AppResult<HttpResponse> {
    let (limit, before) = (limit(query)?, query.before_seq);
    let actor = query.actor.clone();
    if actor
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.len() > 255)
    {
        return Err(AppError::BadRequest("actor: must be 1 to 255 bytes".into()));
    }
    let events = state
        .read(move |c| {
            let page = Page {
                workspace,
                actor_id: actor.as_deref(),
                before_seq: before,
                limit,
            };
            queries::structure_events(c, page)
        })
        .await?;
    Ok(HttpResponse::Ok().json(events))
}

/// The permanent structural log, newest first.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    summary = "Structural events, newest first",
    params(EventsQuery),
    responses(
        (status = 200, description = "The events", body = Vec<StructureEvent>),
        InputRefused, TokenRefused, DbDown,
    ),
)]
pub async fn list_all(
    state: web::Data<AppState>,
    query: Query<EventsQuery>,
) -> AppResult<HttpResponse> {
    page(&state, None, &query).await
}

#[utoipa::path(
    get,
    path = "/events/{workspace_id}",
    tag = "events",
    summary = "One workspace's structural events, newest first",
    params(("workspace_id" = String, Path, format = Uuid, description = "Workspace id"), EventsQuery),
    responses(
        (status = 200, description = "The events", body = Vec<StructureEvent>),
        PathRefused, TokenRefused, NoWorkspace, DbDown,
    ),
)]
/// `GET /events/:workspace_id`: one workspace's structural events, newest first; 404 for one
/// that never existed.
pub async fn list_for_workspace(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query<EventsQuery>,
) -> AppResult<HttpResponse> {
    let id = workspace_id(&path)?;
    page(&state, Some(id), &query).await
}
