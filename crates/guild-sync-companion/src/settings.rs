//! The companion's settings file: the server URL, the API key and (optionally) the
//! SavedVariables path, kept in the user's config directory so nothing has to be typed again
//! after `setup` — `%APPDATA%\guild-sync\companion.toml` on Windows,
//! `~/Library/Application Support/guild-sync/companion.toml` on macOS,
//! `~/.config/guild-sync/companion.toml` on Linux.
//!
//! The file holds a key, so it is readable by the user only: on Unix it is created 0600 (in a
//! 0700 folder) before anything is written into it; on Windows `%APPDATA%` is already private to
//! the user. It is written atomically (temporary file, then rename) so a crash never leaves half
//! a key behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::Secret;

/// Environment variable naming another settings file (tests, several guilds on one PC).
pub const PATH_ENV: &str = "GUILD_SYNC_COMPANION_CONFIG";

/// A settings file larger than this is not ours; refuse it instead of reading it.
const MAX_BYTES: u64 = 64 * 1024;

/// What `setup` stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The server's base URL, e.g. `https://guild.example.org`.
    pub api_url: String,
    /// The key the server expects in `X-API-Key`.
    pub api_key: Secret,
    /// The SavedVariables file, when the officer chose one; else it is found at each start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_variables: Option<PathBuf>,
}

/// The user's config directory joined with `guild-sync` (where the settings and the companion's
/// log live).
pub fn app_dir() -> Result<PathBuf> {
    dirs::config_dir()
        .map(|d| d.join("guild-sync"))
        .context("this system has no per-user config directory; pass --config FILE")
}

/// The settings file: `--config`, else [`PATH_ENV`], else `companion.toml` in [`app_dir`].
pub fn default_path() -> Result<PathBuf> {
    match std::env::var_os(PATH_ENV) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Ok(app_dir()?.join("companion.toml")),
    }
}

/// Read the settings; `None` when there is no file yet.
pub fn load(path: &Path) -> Result<Option<Settings>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if meta.len() > MAX_BYTES {
        bail!(
            "{} is {} bytes, not a companion settings file (at most {MAX_BYTES} bytes)",
            path.display(),
            meta.len()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let settings = toml::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid companion settings file; run `setup` again to rewrite it",
            path.display()
        )
    })?;
    Ok(Some(settings))
}

/// Write the settings, readable by the user only.
pub fn save(path: &Path, settings: &Settings) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;
    let text = toml::to_string(settings).context("cannot encode the settings")?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // A leftover from a crash may have other permissions; start from a new file.
    let _ = std::fs::remove_file(&tmp);
    let mut file = create_private_file(&tmp)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Created with mode 0600 from the start, so the key is never readable by others, not even for
/// the moment between creating the file and changing its mode.
#[cfg(unix)]
fn create_private_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// On Windows the file inherits the ACL of `%APPDATA%`, which only the user (and SYSTEM and
/// administrators) can read.
#[cfg(not(unix))]
fn create_private_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Settings {
        Settings {
            api_url: "https://guild.example.org".into(),
            api_key: Secret::new("k3y\"with'quotes"),
            saved_variables: Some(PathBuf::from(
                r"C:\Program Files (x86)\World of Warcraft\_retail_\WTF\Account\A\SavedVariables\PATTSync.lua",
            )),
        }
    }

    #[test]
    fn settings_round_trip_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("guild-sync").join("companion.toml");
        assert_eq!(load(&path).expect("no file"), None);
        save(&path, &sample()).expect("saved");
        assert_eq!(load(&path).expect("loaded"), Some(sample()));
        // Saving again replaces the file.
        let mut other = sample();
        other.saved_variables = None;
        save(&path, &other).expect("saved again");
        assert_eq!(load(&path).expect("loaded"), Some(other));
    }

    #[cfg(unix)]
    #[test]
    fn the_settings_file_is_created_user_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("guild-sync").join("companion.toml");
        save(&path, &sample()).expect("saved");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        // A leftover temporary file readable by all does not leak its mode into the new file.
        let tmp = path.with_file_name("companion.toml.tmp");
        std::fs::write(&tmp, "").expect("tmp");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        save(&path, &sample()).expect("saved");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_damaged_settings_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("companion.toml");
        std::fs::write(&path, "api_url = ").expect("write");
        let err = format!("{:#}", load(&path).expect_err("damaged"));
        assert!(err.contains("companion.toml"), "{err}");
        assert!(err.contains("setup"), "{err}");
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        assert!(!format!("{:?}", sample()).contains("k3y"));
    }
}
