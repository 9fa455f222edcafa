//! `companion setup`: take the server URL and API key once, check them against the server
//! (`GET /api/guild-sync/addon-upload/status` with the key), and only then store them in the
//! settings file. A key the server refuses is reported with the server's own answer and nothing
//! is written, so a typo never replaces working settings.
//!
//! Reading the answers from the terminal is the command line's job ([`crate::cli`]); this module
//! takes the values, so it is tested against a local server without a terminal.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::settings::{self, Settings};
use crate::uploader::{UploadClient, UploadError};
use crate::{Secret, discovery};

/// A key longer than this is a paste gone wrong, not a key.
const MAX_KEY_CHARS: usize = 512;

/// What the officer gave.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    pub api_url: String,
    pub api_key: Secret,
    /// Store this SavedVariables file instead of finding it at each start.
    pub saved_variables: Option<PathBuf>,
    /// Accept `http://` to a host other than this machine (the key then travels in clear text).
    pub allow_http: bool,
}

/// What setup stored and learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupOutcome {
    pub settings: Settings,
    /// The `export_time` of the last upload the server has, if any.
    pub server_export_time: Option<i64>,
}

/// Check the URL and key against the server; store them in `path` only if the server accepts.
pub async fn setup(path: &Path, request: SetupRequest) -> Result<SetupOutcome> {
    let api_url = check_url(&request.api_url, request.allow_http)?;
    let key = request.api_key.expose().trim();
    if key.is_empty() {
        bail!("the API key is empty; nothing was saved");
    }
    if key.chars().count() > MAX_KEY_CHARS || key.chars().any(char::is_control) {
        bail!(
            "that is not an API key (longer than {MAX_KEY_CHARS} characters or holding control characters); nothing was saved"
        );
    }
    let api_key = Secret::new(key);
    if let Some(file) = &request.saved_variables
        && !file.is_file()
    {
        bail!(
            "{} is not a file; nothing was saved. Leave --saved-variables out to have the companion find {} itself",
            file.display(),
            discovery::FILE_NAME
        );
    }

    let client = UploadClient::new(&api_url, api_key.clone())?;
    let status = match client.status().await {
        Ok(status) => status,
        Err(UploadError::Rejected { status, message }) => bail!(
            "the server refused the key (HTTP {status}: {message}); nothing was saved. Check the key with the server's admin (it is GUILD_SYNC_API_KEY on the server)"
        ),
        Err(UploadError::Unavailable(message)) => bail!(
            "could not check the key with {api_url} ({message}); nothing was saved. Check the URL and that the server is running"
        ),
    };
    let settings = Settings {
        api_url,
        api_key,
        saved_variables: request.saved_variables,
    };
    settings::save(path, &settings)?;
    Ok(SetupOutcome {
        settings,
        server_export_time: status.last_upload.and_then(|u| u.export_time),
    })
}

/// A base URL the companion can use: `https://host[:port][/prefix]`, without a trailing slash.
/// Plain `http://` only to this machine unless `allow_http`: the key is sent with every upload.
pub fn check_url(raw: &str, allow_http: bool) -> Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .with_context(|| format!("{trimmed:?} is not a URL (expected https://your.server)"))?;
    let loopback = matches!(url.host(), Some(url::Host::Domain("localhost")))
        || matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback || allow_http => {}
        "http" => bail!(
            "{trimmed} is plain http: the API key would cross the network in clear text. Use the server's https:// address (or pass --allow-http on a network you trust)"
        ),
        other => bail!("{trimmed}: the scheme {other:?} is not http or https"),
    }
    if url.host().is_none() {
        bail!("{trimmed} has no host name");
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        bail!(
            "{trimmed}: give the server's base address only, without ?query, #fragment or user name"
        );
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_normalised() {
        assert_eq!(
            check_url(" https://guild.example.org/ ", false).expect("ok"),
            "https://guild.example.org"
        );
        assert_eq!(
            check_url("http://127.0.0.1:8080", false).expect("loopback"),
            "http://127.0.0.1:8080"
        );
        assert!(check_url("http://localhost:3000/", false).is_ok());
        let err = check_url("http://guild.example.org", false).expect_err("clear text");
        assert!(err.to_string().contains("https://"), "{err}");
        assert!(check_url("http://guild.example.org", true).is_ok());
        assert!(check_url("guild.example.org", false).is_err());
        assert!(check_url("ftp://guild.example.org", false).is_err());
        assert!(check_url("https://guild.example.org/?key=x", false).is_err());
    }
}
