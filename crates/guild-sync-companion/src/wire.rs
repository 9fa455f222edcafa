//! The upload contract as the companion reads it: the two routes, the key header, and the parts
//! of the server's answers the companion uses.
//!
//! The server owns the contract (`guild_sync::addon_processor` in the service crate). These types
//! are a tolerant reader of it: they name only the fields the companion acts on and ignore the
//! rest, so the server can add fields without breaking companions already installed on gaming
//! PCs. The request body is the core's [`UploadBody`], shared with the server.

use serde::{Deserialize, Serialize};

pub use guild_sync_core::addon::UploadBody;

/// The upload endpoint's path under the API base URL.
pub const UPLOAD_PATH: &str = "/api/guild-sync/addon-upload";

/// The upload status endpoint's path under the API base URL; `setup` also uses it to check a key.
pub const UPLOAD_STATUS_PATH: &str = "/api/guild-sync/addon-upload/status";

/// The header carrying the companion's key.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// The upload endpoint's `202` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAccepted {
    /// The id of the addon run the upload started on the server.
    pub run_id: i64,
    /// The accepted export's `export_time` (unix seconds), when the body carried one.
    pub export_time: Option<i64>,
    /// Characters in the accepted export.
    pub characters: usize,
}

/// The status endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UploadStatus {
    pub last_upload: Option<LastUpload>,
}

/// The last upload the server accepted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LastUpload {
    /// The export's `export_time` (unix seconds): the companion uploads only newer exports.
    pub export_time: Option<i64>,
}
