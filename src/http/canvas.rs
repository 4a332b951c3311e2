use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::require_admin;
use super::body::{FieldLimit, Json, JsonBody};
use crate::app::AppState;
use crate::domain::events::json_number;
use crate::domain::validation::{parse_coordinate, parse_zoom};
use crate::error::AppResult;
use crate::store::canvas::{self, Viewport};

pub async fn get_viewport(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let v = state.read(|c| Ok(canvas::viewport(c)?)).await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "x": json_number(v.x), "y": json_number(v.y), "zoom": json_number(v.zoom) })))
}

#[derive(Deserialize)]
pub struct ViewportBody {
    x: f64,
    y: f64,
    zoom: f64,
}

impl JsonBody for ViewportBody {
    const LIMITS: &'static [FieldLimit] = &[];
}

pub async fn put_viewport(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(body): Json<ViewportBody>,
) -> AppResult<HttpResponse> {
    require_admin(&req, &state)?;
    let viewport = Viewport {
        x: parse_coordinate("x", body.x)?,
        y: parse_coordinate("y", body.y)?,
        zoom: parse_zoom(body.zoom)?,
    };
    state
        .execute(move |tx| crate::commands::canvas::save_viewport(tx, viewport))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "saved" })))
}
