//! `GET`/`PUT /canvas/viewport`: the tenant's one saved canvas viewport
//! (`handlers/viewport.go` at 624ef4d0).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use store::viewport::Viewport;

use super::parse_object;
use super::types::{Saved, ViewportBody, ViewportView};
use crate::error::ApiResult;
use crate::{ApiError, AppState};

/// What a canvas that never saved a viewport starts from.
const DEFAULT_VIEWPORT: ViewportView = ViewportView {
    x: 0.0,
    y: 0.0,
    zoom: 1.0,
};

/// The last saved viewport. Like the original, any failure (nothing saved yet, or the database
/// down) answers the default rather than an error: the canvas only needs somewhere to start.
#[utoipa::path(get, path = "/canvas/viewport", tag = "canvas", responses(
    (status = 200, description = "The saved viewport, or the default {x:0,y:0,zoom:1}",
     body = ViewportView)))]
pub async fn get_viewport(State(state): State<AppState>) -> Json<ViewportView> {
    match store::viewport::latest(&state.db).await {
        Ok(Some(saved)) => Json(ViewportView {
            x: saved.x,
            y: saved.y,
            zoom: saved.zoom,
        }),
        Ok(None) => Json(DEFAULT_VIEWPORT),
        Err(error) => {
            tracing::warn!(error = ?error, "viewport: read failed, answering the default");
            Json(DEFAULT_VIEWPORT)
        }
    }
}

/// Saves the viewport. Missing fields are 0 and a `null` body is all zeros, as in the original;
/// anything that is not numbers is 400 `invalid viewport data`.
#[utoipa::path(put, path = "/canvas/viewport", tag = "canvas", request_body = ViewportBody,
    responses(
    (status = 200, description = "Saved", body = Saved),
    (status = 400, description = "Not a viewport", body = crate::error::ErrorBody),
    (status = 401, description = "Neither an allowed origin nor a valid bearer",
     body = crate::error::ErrorBody),
    (status = 500, description = "Save failed", body = crate::error::ErrorBody),
    (status = 503, description = "Datastore unavailable", body = crate::error::ErrorBody)))]
pub async fn put_viewport(State(state): State<AppState>, body: Bytes) -> ApiResult<Json<Saved>> {
    let body: ViewportBody = parse_object(&body, "invalid viewport data")?.unwrap_or_default();
    let viewport = Viewport {
        x: body.x.unwrap_or_default(),
        y: body.y.unwrap_or_default(),
        zoom: body.zoom.unwrap_or_default(),
    };
    store::viewport::save(&state.db, viewport)
        .await
        .map_err(ApiError::internal("failed to save viewport"))?;
    Ok(Json(Saved { status: "saved" }))
}
