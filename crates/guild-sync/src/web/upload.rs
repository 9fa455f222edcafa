//! Addon upload: choose PATTSync.lua (or the companion's JSON) and upload it, for officers
//! whose gaming PC cannot run the companion. The file goes through the same validation and the
//! same scheduler path as the API's upload.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::Redirect;
use serde::Deserialize;

use super::session::{CsrfMultipart, Session};
use super::{Chrome, Refused, WebState};
use crate::db::sync_log::SyncLogRow;

#[derive(Template, WebTemplate)]
#[template(path = "upload.html")]
pub struct UploadPage {
    chrome: Chrome,
    started: Option<i64>,
    last: Option<SyncLogRow>,
    max_mib: usize,
}

#[derive(Deserialize)]
pub struct UploadQuery {
    run: Option<i64>,
}

pub async fn page(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<UploadQuery>,
) -> Result<UploadPage, Refused> {
    Ok(UploadPage {
        chrome: Chrome::new(&session, "upload"),
        started: query.run,
        last: crate::db::addon::latest_addon_run(&state.app.pool).await?,
        max_mib: guild_sync_core::addon::MAX_UPLOAD_BYTES / (1024 * 1024),
    })
}

pub async fn submit(
    State(state): State<WebState>,
    CsrfMultipart { mut multipart, .. }: CsrfMultipart,
) -> Result<Redirect, Refused> {
    let mut file = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| Refused::BadRequest(format!("cannot read the upload form: {e}")))?
    {
        if field.name() == Some("file") {
            let bytes = field.bytes().await.map_err(|e| {
                Refused::BadRequest(format!(
                    "cannot read the file (larger than {} bytes?): {e}",
                    guild_sync_core::addon::MAX_UPLOAD_BYTES
                ))
            })?;
            file = Some(bytes);
        }
    }
    let bytes = file
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Refused::BadRequest("choose the PATTSync.lua file to upload".into()))?;
    if bytes.len() > guild_sync_core::addon::MAX_UPLOAD_BYTES {
        return Err(Refused::BadRequest(format!(
            "the file is larger than {} bytes",
            guild_sync_core::addon::MAX_UPLOAD_BYTES
        )));
    }
    let export = crate::addon_processor::parse_any(&bytes)
        .map_err(|e| Refused::Unprocessable(format!("the file was not accepted: {e}")))?;
    tracing::info!(
        characters = export.characters.len(),
        "addon export uploaded in the console"
    );
    let triggered = state.app.scheduler.trigger_upload(Arc::new(export)).await?;
    Ok(Redirect::to(&format!("/upload?run={}", triggered.run_id)))
}
