//! The uploader: watches the PATTSync SavedVariables file and uploads each new export to the
//! guild-sync server.
//!
//! WoW writes SavedVariables on logout and `/reload` by deleting (or renaming to `.bak`) the old
//! file and writing a new one, so the companion watches the *directory* for create, rename and
//! modify events of the file's name, waits for the writes to settle ([`DEFAULT_DEBOUNCE`]), and
//! also polls the file's size and mtime ([`DEFAULT_POLL_INTERVAL`]) in case events are lost
//! (network drives, editors, sleeping laptops).
//!
//! Delivery rules: an export is uploaded only if its `exportTime` is newer than the last one the
//! server accepted (asked from the status endpoint on start, and remembered in a small state
//! file). Before the first attempt the export is copied into the state file, so an export not
//! yet delivered survives WoW overwriting the file, the server being down, and a restart of
//! the companion. A server that is down is retried with exponential backoff
//! ([`DEFAULT_RETRY_INITIAL`] up to [`DEFAULT_RETRY_MAX`]); an upload the server refuses (4xx)
//! is not retried until a newer export or a restart. The wire contract is in [`crate::wire`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use guild_sync_core::addon::AddonExport;

use crate::Secret;
use crate::wire::{
    API_KEY_HEADER, UPLOAD_PATH, UPLOAD_STATUS_PATH, UploadAccepted, UploadBody, UploadStatus,
};

/// How long the file must stay quiet after an event before it is read: WoW writes a large
/// SavedVariables file in several chunks.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(2);

/// How often the file's size and mtime are checked in case a file-system event was missed.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// First wait after a failed upload; doubles after each further failure.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(2);

/// Longest wait between two upload attempts while the server is down.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);

/// Upload attempts with `--once` before giving up (the export stays in the state file).
pub const DEFAULT_ONCE_ATTEMPTS: u32 = 5;

/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest server answer shown to the officer, in characters.
const MAX_SERVER_MESSAGE_CHARS: usize = 300;

/// Suffix of the state file kept next to the SavedVariables file.
const STATE_SUFFIX: &str = ".guild-sync-companion.json";

/// How the companion runs.
#[derive(Debug, Clone)]
pub struct CompanionOptions {
    /// The `PATTSync.lua` SavedVariables file.
    pub saved_variables: PathBuf,
    /// The server's base URL, e.g. `https://guild.example.org`.
    pub api_url: String,
    pub api_key: Secret,
    /// Where the companion remembers what it delivered and what it still has to.
    pub state_file: PathBuf,
    pub debounce: Duration,
    pub poll_interval: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub once_attempts: u32,
}

impl CompanionOptions {
    /// Options with the default timings and the state file next to the SavedVariables file.
    pub fn new(
        saved_variables: PathBuf,
        api_url: impl Into<String>,
        api_key: impl Into<Secret>,
    ) -> Self {
        let api_key = api_key.into();
        let state_file = default_state_file(&saved_variables);
        CompanionOptions {
            saved_variables,
            api_url: api_url.into().trim_end_matches('/').to_owned(),
            api_key,
            state_file,
            debounce: DEFAULT_DEBOUNCE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            once_attempts: DEFAULT_ONCE_ATTEMPTS,
        }
    }
}

/// `PATTSync.lua` → `PATTSync.lua.guild-sync-companion.json` in the same directory (WoW only
/// loads `<addon>.lua` files, so it ignores this one).
pub fn default_state_file(saved_variables: &Path) -> PathBuf {
    let mut name = saved_variables
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "PATTSync.lua".into());
    name.push(STATE_SUFFIX);
    saved_variables.with_file_name(name)
}

/// What the companion remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanionState {
    /// The newest `export_time` the server accepted (unix seconds).
    pub last_accepted_export_time: Option<i64>,
    /// An export read from the file but not yet accepted by the server.
    pub pending: Option<UploadBody>,
}

impl CompanionState {
    fn load(path: &Path) -> Result<CompanionState> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the companion state file {} is damaged; move it away to start afresh",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CompanionState::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Write atomically (temporary file + rename) so a crash never leaves half a state file.
    fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).context("cannot encode the companion state")?;
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    fn pending_time(&self) -> Option<i64> {
        self.pending.as_ref().and_then(|p| p.export_time)
    }
}

/// Why an upload did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The server could not be reached, timed out or answered 5xx/408/429: try again later.
    #[error("the server is not available: {0}")]
    Unavailable(String),
    /// The server refused the upload (4xx): retrying the same export will not help.
    #[error("the server refused the upload ({status}): {message}")]
    Rejected { status: u16, message: String },
}

/// The HTTP client for the upload contract.
#[derive(Clone)]
pub struct UploadClient {
    http: reqwest::Client,
    api_url: String,
    api_key: Secret,
}

impl UploadClient {
    pub fn new(api_url: &str, api_key: Secret) -> Result<UploadClient> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("guild-sync-companion/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(UploadClient {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            api_key,
        })
    }

    /// The `export_time` of the last upload the server accepted.
    pub async fn last_accepted_export_time(&self) -> Result<Option<i64>, UploadError> {
        Ok(self.status().await?.last_upload.and_then(|u| u.export_time))
    }

    /// The status endpoint's answer; a refused key is [`UploadError::Rejected`].
    pub async fn status(&self) -> Result<UploadStatus, UploadError> {
        let response = self
            .http
            .get(format!("{}{UPLOAD_STATUS_PATH}", self.api_url))
            .header(API_KEY_HEADER, self.api_key.expose())
            .send()
            .await
            .map_err(|e| UploadError::Unavailable(plain_error(e)))?;
        let response = check_status(response).await?;
        response.json().await.map_err(|e| {
            UploadError::Unavailable(format!("unreadable status answer: {}", plain_error(e)))
        })
    }

    /// Upload one export.
    pub async fn upload(&self, body: &UploadBody) -> Result<UploadAccepted, UploadError> {
        let response = self
            .http
            .post(format!("{}{UPLOAD_PATH}", self.api_url))
            .header(API_KEY_HEADER, self.api_key.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| UploadError::Unavailable(plain_error(e)))?;
        let response = check_status(response).await?;
        response.json().await.map_err(|e| {
            // The server said yes but the answer is garbled: treat as not delivered, since
            // uploading an export twice is harmless and losing one is not.
            UploadError::Unavailable(format!("unreadable upload answer: {}", plain_error(e)))
        })
    }
}

/// reqwest errors without the URL (it is already in the logs' context) and without the key.
fn plain_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, UploadError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or(text);
    // The answer is shown to the officer and logged: bounded, and no control characters that
    // could rewrite the terminal.
    let message: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_SERVER_MESSAGE_CHARS)
        .collect();
    let code = status.as_u16();
    if status.is_server_error() || code == 408 || code == 429 {
        Err(UploadError::Unavailable(format!("HTTP {code} {message}")))
    } else {
        Err(UploadError::Rejected {
            status: code,
            message,
        })
    }
}

/// What reading the SavedVariables file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCheck {
    /// The file does not exist (WoW is between deleting and rewriting it, or never ran the addon).
    Missing,
    /// The file could not be parsed (perhaps half written); the reason in plain words.
    Unreadable(String),
    /// The export is not newer than what the server already has or what is pending.
    NotNew { export_time: i64 },
    /// A new export is pending delivery.
    NewExport { export_time: i64, characters: usize },
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    NothingPending,
    Delivered(UploadAccepted),
    /// Not delivered; try again later.
    Retry(String),
    /// Refused by the server; not retried until a newer export or a restart.
    Rejected(String),
}

/// The companion's state machine; [`Companion::run_once`] and [`Companion::watch`] drive it.
pub struct Companion {
    options: CompanionOptions,
    client: UploadClient,
    state: CompanionState,
    /// The pending export was refused by the server in this session.
    pending_rejected: bool,
}

impl Companion {
    /// Load the state file and ask the server which export it has.
    pub async fn start(options: CompanionOptions) -> Result<Companion> {
        let client = UploadClient::new(&options.api_url, options.api_key.clone())?;
        let state = CompanionState::load(&options.state_file)?;
        let mut companion = Companion {
            options,
            client,
            state,
            pending_rejected: false,
        };
        tracing::info!(
            file = %companion.options.saved_variables.display(),
            server = %companion.options.api_url,
            "companion started"
        );
        match companion.client.last_accepted_export_time().await {
            Ok(server_time) => {
                match server_time {
                    Some(t) => tracing::info!(
                        export_time = t,
                        exported_at = %show_time(t),
                        "the server already has the export made at {}",
                        show_time(t)
                    ),
                    None => tracing::info!("the server has no addon upload yet"),
                }
                companion.accepted(server_time)?;
            }
            Err(e) => tracing::warn!(
                error = %e,
                "could not ask the server which export it has; going by the state file"
            ),
        }
        if let Some(t) = companion.state.pending_time() {
            tracing::info!(
                export_time = t,
                "an export made at {} was not delivered yet; it will be sent",
                show_time(t)
            );
        }
        Ok(companion)
    }

    /// The companion's state (for tests and logs).
    pub fn state(&self) -> &CompanionState {
        &self.state
    }

    /// Record that the server has everything up to `export_time`; drop a pending export that
    /// is not newer.
    fn accepted(&mut self, export_time: Option<i64>) -> Result<()> {
        let Some(t) = export_time else { return Ok(()) };
        let newest = self
            .state
            .last_accepted_export_time
            .map_or(t, |old| old.max(t));
        self.state.last_accepted_export_time = Some(newest);
        if self.state.pending_time().is_some_and(|p| p <= newest) {
            self.state.pending = None;
            self.pending_rejected = false;
        }
        self.state.save(&self.options.state_file)
    }

    /// Read the SavedVariables file; a new export becomes pending (and is saved to the state
    /// file before any upload is tried).
    pub fn check_file(&mut self) -> Result<FileCheck> {
        let path = &self.options.saved_variables;
        let limit = guild_sync_core::savedvars::MAX_INPUT_BYTES as u64;
        match std::fs::metadata(path) {
            Ok(m) if m.len() > limit => {
                return Ok(FileCheck::Unreadable(format!(
                    "the file is {} bytes; the limit is {limit} bytes",
                    m.len()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileCheck::Missing),
            _ => {}
        }
        let contents = match std::fs::read(path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileCheck::Missing),
            Err(e) => return Ok(FileCheck::Unreadable(format!("cannot read the file: {e}"))),
        };
        let export = match AddonExport::from_saved_variables(&contents) {
            Ok(export) => export,
            Err(e) => return Ok(FileCheck::Unreadable(e.to_string())),
        };
        let Some(export_time) = export.export_time else {
            return Ok(FileCheck::Unreadable("the export has no exportTime".into()));
        };
        let known = [
            self.state.last_accepted_export_time,
            self.state.pending_time(),
        ]
        .into_iter()
        .flatten()
        .max();
        if known.is_some_and(|k| export_time <= k) {
            return Ok(FileCheck::NotNew { export_time });
        }
        let characters = export.characters.len();
        self.state.pending = Some(export.to_upload_body());
        self.pending_rejected = false;
        self.state.save(&self.options.state_file)?;
        Ok(FileCheck::NewExport {
            export_time,
            characters,
        })
    }

    /// Try once to deliver the pending export.
    pub async fn deliver(&mut self) -> Result<Delivery> {
        let Some(body) = self.state.pending.clone() else {
            return Ok(Delivery::NothingPending);
        };
        if self.pending_rejected {
            return Ok(Delivery::NothingPending);
        }
        let export_time = body.export_time;
        tracing::info!(
            export_time,
            characters = body.characters.len(),
            "uploading the export made at {} ({} characters)",
            export_time.map_or_else(|| "an unknown time".into(), show_time),
            body.characters.len()
        );
        match self.client.upload(&body).await {
            Ok(accepted) => {
                tracing::info!(
                    run_id = accepted.run_id,
                    characters = accepted.characters,
                    "the server accepted the export (run {})",
                    accepted.run_id
                );
                self.accepted(export_time.or(accepted.export_time))?;
                if self.state.pending.as_ref() == Some(&body) {
                    // Accepted but without any export_time to compare: still delivered.
                    self.state.pending = None;
                    self.state.save(&self.options.state_file)?;
                }
                Ok(Delivery::Delivered(accepted))
            }
            Err(UploadError::Unavailable(message)) => Ok(Delivery::Retry(message)),
            Err(UploadError::Rejected { status, message }) => {
                self.pending_rejected = true;
                tracing::error!(
                    status,
                    error = %message,
                    "the server refused the export; it is kept and sent again after a newer export or a restart"
                );
                Ok(Delivery::Rejected(format!("HTTP {status}: {message}")))
            }
        }
    }

    /// Read the file once and deliver anything new, retrying up to `once_attempts` times.
    /// Fails if an export is left undelivered (it stays in the state file for next time).
    pub async fn run_once(&mut self) -> Result<Delivery> {
        self.log_check()?;
        let mut wait = self.options.retry_initial;
        let attempts = self.options.once_attempts.max(1);
        for attempt in 1..=attempts {
            match self.deliver().await? {
                Delivery::Retry(message) if attempt < attempts => {
                    tracing::warn!(
                        error = %message,
                        attempt,
                        "the server is not available; trying again in {}",
                        show_duration(wait)
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.options.retry_max);
                }
                Delivery::Retry(message) => bail!(
                    "the export was not delivered after {attempts} attempts ({message}); it is kept in {} and will be sent next time",
                    self.options.state_file.display()
                ),
                Delivery::Rejected(message) => bail!("the server refused the export: {message}"),
                other => {
                    if other == Delivery::NothingPending {
                        tracing::info!("nothing new to upload");
                    }
                    return Ok(other);
                }
            }
        }
        Ok(Delivery::NothingPending)
    }

    fn log_check(&mut self) -> Result<FileCheck> {
        let check = self.check_file()?;
        match &check {
            FileCheck::Missing => tracing::info!(
                file = %self.options.saved_variables.display(),
                "the SavedVariables file is not there (yet)"
            ),
            FileCheck::Unreadable(why) => tracing::warn!(
                file = %self.options.saved_variables.display(),
                reason = %why,
                "the SavedVariables file cannot be used yet; waiting for the next write"
            ),
            FileCheck::NotNew { export_time } => tracing::info!(
                export_time,
                "the export made at {} was already delivered",
                show_time(*export_time)
            ),
            FileCheck::NewExport {
                export_time,
                characters,
            } => tracing::info!(
                export_time,
                characters,
                "found a new export made at {} with {characters} characters",
                show_time(*export_time)
            ),
        }
        Ok(check)
    }

    /// Watch the file until `shutdown` completes, uploading every new export.
    pub async fn watch(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
        let target = self
            .options
            .saved_variables
            .file_name()
            .map(|n| n.to_owned());
        let dir = match self.options.saved_variables.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // The directory, not the file: the file's inode changes every time WoW rewrites it.
        let watcher = {
            use notify::Watcher;
            let target = target.clone();
            let made = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(event) = res
                    && (event.paths.is_empty()
                        || event
                            .paths
                            .iter()
                            .any(|p| p.file_name().map(|n| n.to_owned()) == target))
                {
                    let _ = events_tx.send(());
                }
            });
            match made {
                Ok(mut w) => match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        tracing::info!(directory = %dir.display(), "watching for changes");
                        Some(w)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, directory = %dir.display(), "cannot watch the directory; checking every {} instead", show_duration(self.options.poll_interval));
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch files here; polling instead");
                    None
                }
            }
        };

        tokio::pin!(shutdown);
        let mut last_stamp = file_stamp(&self.options.saved_variables);
        let mut poll = tokio::time::interval(self.options.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await; // the first tick is immediate; the start-up check below covers it
        let mut settle_at: Option<Instant> = None;
        let mut retry_at: Option<Instant> = None;
        let mut wait = self.options.retry_initial;

        self.log_check()?;
        self.attempt(&mut retry_at, &mut wait).await?;

        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(()) = events.recv() => {
                    // Every event restarts the quiet period: read only once WoW is done.
                    settle_at = Some(Instant::now() + self.options.debounce);
                }
                () = sleep_until_opt(settle_at) => {
                    settle_at = None;
                    last_stamp = file_stamp(&self.options.saved_variables);
                    if matches!(self.log_check()?, FileCheck::NewExport { .. }) {
                        wait = self.options.retry_initial;
                        self.attempt(&mut retry_at, &mut wait).await?;
                    }
                }
                _ = poll.tick() => {
                    let stamp = file_stamp(&self.options.saved_variables);
                    if stamp != last_stamp {
                        tracing::info!("the file changed (seen by polling)");
                        last_stamp = stamp;
                        if matches!(self.log_check()?, FileCheck::NewExport { .. }) {
                            wait = self.options.retry_initial;
                            self.attempt(&mut retry_at, &mut wait).await?;
                        }
                    }
                }
                () = sleep_until_opt(retry_at) => {
                    retry_at = None;
                    self.attempt(&mut retry_at, &mut wait).await?;
                }
            }
        }
        drop(watcher);
        if let Some(t) = self.state.pending_time() {
            tracing::info!(
                export_time = t,
                "stopping with the export made at {} not yet delivered; it will be sent next time",
                show_time(t)
            );
        }
        tracing::info!("companion stopped");
        Ok(())
    }

    async fn attempt(&mut self, retry_at: &mut Option<Instant>, wait: &mut Duration) -> Result<()> {
        match self.deliver().await? {
            Delivery::Retry(message) => {
                tracing::warn!(
                    error = %message,
                    "the server is not available; trying again in {}",
                    show_duration(*wait)
                );
                *retry_at = Some(Instant::now() + *wait);
                *wait = (*wait * 2).min(self.options.retry_max);
            }
            Delivery::Delivered(_) | Delivery::Rejected(_) | Delivery::NothingPending => {
                *retry_at = None;
                *wait = self.options.retry_initial;
            }
        }
        Ok(())
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Size and modification time: enough to notice a rewrite when polling.
fn file_stamp(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().ok()))
}

fn show_time(unix_seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix_seconds, 0).map_or_else(
        || unix_seconds.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn show_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_sits_next_to_the_saved_variables() {
        assert_eq!(
            default_state_file(Path::new("/wow/WTF/Account/X/SavedVariables/PATTSync.lua")),
            PathBuf::from(
                "/wow/WTF/Account/X/SavedVariables/PATTSync.lua.guild-sync-companion.json"
            )
        );
    }

    #[test]
    fn the_state_round_trips_and_a_missing_file_is_an_empty_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        assert_eq!(
            CompanionState::load(&path).expect("empty"),
            CompanionState::default()
        );
        let state = CompanionState {
            last_accepted_export_time: Some(5),
            pending: None,
        };
        state.save(&path).expect("saved");
        assert_eq!(CompanionState::load(&path).expect("loaded"), state);
        std::fs::write(&path, b"{garbage").expect("write");
        assert!(CompanionState::load(&path).is_err());
    }
}
