//! addon_processor: a PATTSync export from a file (the SavedVariables `PATTSync.lua` or an
//! upload `.json`) or an HTTP upload body → a validated [`AddonExport`]; plus [`LastUpload`],
//! what the upload status reports. The wire types the companion shares (routes, header, body,
//! the `202` answer) are the core's; the HTTP shapes of the answers are `api::guild_sync`'s.
//!
//! Parsing and validation are the core's ([`guild_sync_core::addon`],
//! [`guild_sync_core::savedvars`]): the file is read as data, never executed. This module only
//! reads files and decides which carrier a file is. It writes nothing to the database — that
//! is [`crate::db_sync::addon::sync_addon_data`]'s job.
//!
//! # The upload contract
//!
//! - `POST {api_url}/api/guild-sync/addon-upload`, header `X-API-Key`, body
//!   [`guild_sync_core::addon::UploadBody`] (SPEC §4 plus `export_time`). Parse it with
//!   [`parse_upload_json`]; answer a refusal with its status (400 unreadable, 413 too large,
//!   422 empty or invalid; `crate::api::error` maps them) and `{"error": "…"}`, `409` when it is
//!   older than the last applied export ([`crate::db_sync::addon::check_fresh`]), `429` with
//!   `Retry-After` over the key's rate (`crate::api::upload_limit`), else `202` with
//!   [`UploadAccepted`].
//! - `GET {api_url}/api/guild-sync/addon-upload/status`, same header → `{"last_upload":
//!   [`LastUpload`]}`: the last upload the server accepted, so the companion knows which
//!   `export_time` it already has.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

pub use guild_sync_core::addon::{
    API_KEY_HEADER, AddonCharacter, AddonExport, AddonInputError, UPLOAD_PATH, UPLOAD_STATUS_PATH,
    UploadAccepted, UploadBody,
};

use crate::db::sync_log::RunState;

/// Parse an upload body. Errors say whether the body was malformed JSON (400), too large
/// (413), empty or invalid (422, naming the field or record).
pub fn parse_upload_json(body: &[u8]) -> Result<AddonExport, AddonInputError> {
    AddonExport::from_upload_json(body)
}

/// Parse a SavedVariables export (`PATTSyncDB.lastExport`), read as data.
pub fn parse_saved_variables(contents: &[u8]) -> Result<AddonExport, AddonInputError> {
    AddonExport::from_saved_variables(contents)
}

/// Parse either carrier: JSON when the content starts with `{` or `[` after whitespace (a
/// SavedVariables file starts with a global's name or a comment, never a brace), else Lua.
pub fn parse_any(contents: &[u8]) -> Result<AddonExport, AddonInputError> {
    let first = contents
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(contents)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{' | b'[') => parse_upload_json(contents),
        _ => parse_saved_variables(contents),
    }
}

/// Read an export file: `.json` → upload body, `.lua` → SavedVariables, anything else by content.
pub fn read_export_file(path: &Path) -> Result<AddonExport> {
    let limit = guild_sync_core::savedvars::MAX_INPUT_BYTES as u64;
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > limit {
        anyhow::bail!(
            "{} is {size} bytes; the limit is {limit} bytes",
            path.display()
        );
    }
    let contents =
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let parsed = match extension.as_deref() {
        Some("json") => parse_upload_json(&contents),
        Some("lua") => parse_saved_variables(&contents),
        _ => parse_any(&contents),
    };
    parsed.with_context(|| format!("{} is not a usable PATTSync export", path.display()))
}

/// The last upload the server accepted, and how its addon run went (the HTTP shape is
/// `api::guild_sync::LastUpload`).
#[derive(Debug, Clone, PartialEq)]
pub struct LastUpload {
    pub run_id: i64,
    pub received_at: DateTime<Utc>,
    /// The export's `export_time` (unix seconds): the companion uploads only newer exports.
    pub export_time: Option<i64>,
    pub uploaded_by: Option<String>,
    pub addon_version: Option<String>,
    pub characters: usize,
    /// Characters matched to a row (`None` while the run is still going).
    pub matched: Option<usize>,
    /// Characters with no row (`None` while the run is still going).
    pub unknown: Option<usize>,
    /// The run's `sync_log.status`.
    pub status: RunState,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_carrier_is_chosen_by_content_when_the_extension_says_nothing() {
        let json = br#"  {"characters": [{"name": "A", "realm": "B"}]}"#;
        assert_eq!(parse_any(json).expect("json").characters[0].name, "A");
        let lua = b"-- saved\nPATTSyncDB = { lastExport = { exportTime = 5, characters = { { name = 'A', realm = 'B' } } } }";
        assert_eq!(parse_any(lua).expect("lua").export_time, Some(5));
        assert!(matches!(
            parse_any(b"{oops").expect_err("bad"),
            AddonInputError::MalformedJson { .. }
        ));
    }
}
