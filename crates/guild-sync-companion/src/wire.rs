//! The upload contract as the companion reads it: the two routes, the key header, and the parts
//! of the server's answers the companion uses.
//!
//! The routes, the header, the request body ([`UploadBody`]) and the upload's answer
//! ([`UploadAccepted`]) are the core's `guild_sync_core::addon` types, which the server uses too,
//! so the two cannot drift apart. The status answer stays a tolerant reader here: the server's
//! shape carries the run's status and figures, the companion needs only `export_time`, and
//! naming only that keeps companions already installed on gaming PCs working when the server
//! adds or changes the rest.

use serde::Deserialize;

pub use guild_sync_core::addon::{
    API_KEY_HEADER, UPLOAD_PATH, UPLOAD_STATUS_PATH, UploadAccepted, UploadBody,
};

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
