//! A workspace's blobs (the images its pipelines generated before the asset store), by
//! content hash: the address older contexts' data names, now served from the asset store.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::App;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Actor;

/// A blob's bytes, for the workspace's members. Its content never changes, so it may be
/// cached for good; `If-None-Match` with its ETag answers 304.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/blobs/{sha256}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id or slug"),
        ("sha256" = String, Path, description = "The blob's SHA-256, 64 lower-case hex digits")),
    responses((status = 200, description = "The bytes, with their media type"), (status = 304, description = "Not modified"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get_blob(
    State(app): State<App>,
    Actor(who): Actor,
    Path((ws, sha256)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    super::assets::check_sha(&sha256)?;
    let (ws, _) = app.store().role_in_workspace(&who, &ws).await?;
    // Blobs moved to the asset store when the server started; one not moved yet is still here.
    let whole = match app.store().get_blob(&ws.id, &sha256).await {
        Ok(blob) => quire_app::assets::Delivery::of_bytes(blob.media_type, blob.sha256, blob.bytes.into()),
        Err(quire_core::Error::NotFound { .. }) => {
            app.assets().open(&ws.id, &sha256, quire_app::assets::Variant::Original).await?
        }
        Err(e) => return Err(e.into()),
    };
    super::assets::deliver(&headers, "private, max-age=31536000, immutable", whole).await
}
