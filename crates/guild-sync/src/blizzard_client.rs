//! blizzard_client: the Battle.net side of db_sync (SPEC §4). It owns the wire types of the
//! token, roster and character-profile responses and their parsers; the live client (OAuth2
//! client-credentials token cache, a rate limiter shared by every request, concurrent profile
//! fetches, retries with jittered backoff, and a pace that halves while Battle.net keeps
//! answering 429); and the file-backed source for `--from-dir`, which
//! runs the same parsers on files in the API's shapes.
//!
//! It must not touch the database or decide anything about the stored characters: it returns a
//! [`FetchedRoster`] and db_sync does the rest.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use reqwest::StatusCode;
use serde::{Deserialize, Deserializer};

use crate::config::{Config, Secret};

/// Blizzard's hourly request budget per client (SPEC §4).
pub const HOURLY_BUDGET: u32 = 36_000;

/// Retries after the first attempt of one request, on 429, 5xx and timeouts.
pub const MAX_RETRIES: u32 = 3;

/// First retry delay before jitter; doubled on each retry.
pub const BASE_BACKOFF: Duration = Duration::from_millis(250);

/// Longest `Retry-After` we honour; a longer one means the budget is gone for a while and the
/// character is better given up for this run.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A token is renewed this long before Blizzard says it expires, so no request goes out with a
/// token that dies in flight.
pub const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(60);

/// Timeout of one HTTP request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Profile requests in flight at once. The limiter sets the pace; this only has to cover the
/// latency (90 requests/s × ~0.3 s ≈ 27).
pub const PROFILE_CONCURRENCY: usize = 64;

/// Characters escaped in a path segment: everything but RFC 3986 unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

// ---------------------------------------------------------------------------------------------
// Wire types. Every struct ignores fields it does not name: Blizzard adds fields freely.

/// `POST {oauth_url}` → the client-credentials token.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// A realm reference (`realm: {id, slug, name}`); the roster's member realms have no name.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RealmRef {
    #[serde(default)]
    pub id: Option<i64>,
    pub slug: String,
    #[serde(default, deserialize_with = "localized_opt")]
    pub name: Option<String>,
}

/// A reference by id with an optional name (`playable_class`, `character_class`, `active_spec`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NamedRef {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "localized_opt")]
    pub name: Option<String>,
}

/// `GET /data/wow/guild/{realm}/{guild}/roster`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Roster {
    pub guild: RosterGuild,
    pub members: Vec<RosterMember>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RosterGuild {
    #[serde(deserialize_with = "localized")]
    pub name: String,
    pub realm: RealmRef,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RosterMember {
    pub character: RosterCharacter,
    /// In-game rank index, 0 = Guild Leader.
    pub rank: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RosterCharacter {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub level: Option<i32>,
    pub realm: RealmRef,
    #[serde(default)]
    pub playable_class: Option<NamedRef>,
}

/// `GET /profile/wow/character/{realm}/{name}`: the fields db_sync stores; the whole document
/// is kept as `raw` for `profile_json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub fields: ProfileFields,
    pub raw: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ProfileFields {
    pub id: i64,
    pub name: String,
    pub realm: RealmRef,
    #[serde(default)]
    pub character_class: Option<NamedRef>,
    #[serde(default)]
    pub active_spec: Option<NamedRef>,
    #[serde(default)]
    pub level: Option<i32>,
    #[serde(default)]
    pub achievement_points: Option<i32>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub last_login_timestamp: Option<i64>,
    #[serde(default)]
    pub equipped_item_level: Option<i32>,
}

/// Names come as strings when a locale is requested, as `{en_US: …, …}` otherwise.
#[derive(Deserialize)]
#[serde(untagged)]
enum Localized {
    Plain(String),
    Map(std::collections::BTreeMap<String, Option<String>>),
}

impl Localized {
    fn into_string(self) -> Option<String> {
        match self {
            Localized::Plain(s) => Some(s),
            Localized::Map(mut map) => map
                .remove("en_US")
                .flatten()
                .or_else(|| map.into_values().flatten().next()),
        }
    }
}

fn localized<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Localized::deserialize(d)?
        .into_string()
        .ok_or_else(|| serde::de::Error::custom("a localized name with no value"))
}

fn localized_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Localized>::deserialize(d)?.and_then(Localized::into_string))
}

/// Parse a roster document.
pub fn parse_roster(body: &[u8]) -> Result<Roster> {
    serde_json::from_slice(body).context("the roster is not a Battle.net guild roster document")
}

/// Parse a character profile document.
pub fn parse_profile(body: &[u8]) -> Result<Profile> {
    let raw: serde_json::Value =
        serde_json::from_slice(body).context("the profile is not valid JSON")?;
    let fields = ProfileFields::deserialize(&raw)
        .context("the profile is not a Battle.net character profile document")?;
    Ok(Profile { fields, raw })
}

/// The outcome of one profile fetch.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileFetch {
    Found(Box<Profile>),
    /// 404: normal for long-inactive characters; the roster data is kept.
    NotFound,
    /// Gave up after the retries; the roster data is kept and the run is `partial`.
    Failed(String),
}

/// A roster and one profile outcome per member (same order).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedRoster {
    pub roster: Roster,
    pub profiles: Vec<ProfileFetch>,
}

// ---------------------------------------------------------------------------------------------
// The live client.

/// Everything the live client needs; [`BlizzardSettings::from_config`] fills it from SPEC §6.
#[derive(Debug, Clone)]
pub struct BlizzardSettings {
    pub api_base: String,
    pub oauth_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub region: String,
    pub locale: String,
    pub realm_slug: String,
    pub guild_slug: String,
    /// Requests per second (sustained).
    pub requests_per_second: u32,
    /// Requests per hour.
    pub hourly_budget: u32,
    pub max_retries: u32,
    pub base_backoff: Duration,
}

impl BlizzardSettings {
    /// The live settings, or an error naming every missing variable.
    pub fn from_config(config: &Config) -> Result<Self> {
        let missing = config.missing_blizzard_settings();
        if !missing.is_empty() {
            bail!(
                "the Battle.net sync needs {} (or use --from-dir)",
                missing.join(", ")
            );
        }
        Ok(BlizzardSettings {
            api_base: config.blizzard_api_base().trim_end_matches('/').to_string(),
            oauth_url: config.blizzard_oauth_url.clone(),
            client_id: config.blizzard_client_id.clone().unwrap_or_default(),
            client_secret: config
                .blizzard_client_secret
                .clone()
                .unwrap_or_else(|| Secret::new("")),
            region: config.blizzard_region.to_lowercase(),
            locale: "en_US".into(),
            realm_slug: config.guild_realm_slug.clone().unwrap_or_default(),
            guild_slug: config.guild_name_slug.clone().unwrap_or_default(),
            requests_per_second: config.blizzard_requests_per_second.max(1),
            hourly_budget: HOURLY_BUDGET,
            max_retries: MAX_RETRIES,
            base_backoff: BASE_BACKOFF,
        })
    }
}

/// Slowest pace the client backs off to when Battle.net keeps answering 429: one request every
/// two seconds. Slower than that, the hourly budget is the real problem and retries give up.
pub const SLOWEST_PACE: Duration = Duration::from_secs(2);

/// Extra retries a request gets for 429s (on top of [`MAX_RETRIES`]) while the pace adapts.
pub const THROTTLED_EXTRA_RETRIES: u32 = 6;

/// After a slowdown, how long the pace holds before it starts speeding up again.
const SPEEDUP_AFTER: Duration = Duration::from_secs(2);

/// How long a slowdown holds before the next 429 may halve the pace again: every request in
/// flight when the server started refusing will come back 429, and those are one signal, not 64.
const SLOWDOWN_HOLD: Duration = Duration::from_millis(500);

/// Adaptive pacing on top of the configured rate (multiplicative decrease, gentle increase). Battle.net's real limit can be lower than the configured one — a shared
/// client id, or a proxy — and then a fixed rate keeps hitting 429 until the retries run out
/// (78 of 300 profiles failed at a 20/s server limit). On a 429 the pace halves; after
/// [`SPEEDUP_AFTER`] each success speeds it up by 1/64 until it is back at the configured rate,
/// where the pacer steps aside.
struct Pacer {
    state: std::sync::Mutex<PaceState>,
    /// The configured rate's interval: pacing never goes faster than this.
    floor: Duration,
}

struct PaceState {
    /// Time between request starts; zero = not pacing (the configured rate alone applies).
    interval: Duration,
    /// When the next request may start.
    next: Instant,
    last_slowdown: Option<Instant>,
}

impl Pacer {
    fn new(requests_per_second: u32) -> Pacer {
        Pacer {
            state: std::sync::Mutex::new(PaceState {
                interval: Duration::ZERO,
                next: Instant::now(),
                last_slowdown: None,
            }),
            floor: Duration::from_secs(1) / requests_per_second.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PaceState> {
        // The state is two durations; a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take the next start slot; returns how long to wait for it.
    fn reserve(&self) -> Duration {
        let now = Instant::now();
        let mut state = self.lock();
        if state.interval.is_zero() {
            return Duration::ZERO;
        }
        let slot = state.next.max(now);
        state.next = slot + state.interval;
        slot - now
    }

    /// Battle.net refused a request for its rate: halve the pace.
    fn throttled(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        if state
            .last_slowdown
            .is_some_and(|at| now.duration_since(at) < SLOWDOWN_HOLD)
        {
            return;
        }
        state.last_slowdown = Some(now);
        let slower = (state.interval * 2).max(self.floor * 2).min(SLOWEST_PACE);
        tracing::info!(
            requests_per_second = 1.0 / slower.as_secs_f64(),
            "Battle.net keeps answering 429; slowing down"
        );
        state.interval = slower;
    }

    /// A request went through: speed up a little, once the last slowdown has settled.
    fn succeeded(&self) {
        let mut state = self.lock();
        if state.interval.is_zero()
            || state
                .last_slowdown
                .is_some_and(|at| at.elapsed() < SPEEDUP_AFTER)
        {
            return;
        }
        let faster = state.interval - state.interval / 64;
        state.interval = if faster < self.floor {
            Duration::ZERO
        } else {
            faster
        };
    }

    /// The current pace in requests per second (`None` = not pacing).
    fn current(&self) -> Option<f64> {
        let state = self.lock();
        (!state.interval.is_zero()).then(|| 1.0 / state.interval.as_secs_f64())
    }
}

struct CachedToken {
    value: String,
    renew_at: Instant,
}

/// The Battle.net API client. Cheap to share (`Arc` inside); every request goes through one
/// rate limiter, so concurrent callers together stay under the budget.
#[derive(Clone)]
pub struct BlizzardClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    settings: BlizzardSettings,
    per_second: DefaultDirectRateLimiter,
    per_hour: DefaultDirectRateLimiter,
    pacer: Pacer,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

/// How one attempt ended.
enum Attempt {
    Done(reqwest::Response),
    /// Retry after this delay (`Retry-After`), or after the backoff if `None`.
    Retry(Option<Duration>, String),
}

impl BlizzardClient {
    pub fn new(settings: BlizzardSettings) -> Result<Self> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("guild-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        let pacer_rps = settings.requests_per_second;
        let rps = NonZeroU32::new(settings.requests_per_second.max(1)).expect("max(1) is nonzero");
        // A burst of a tenth of a second's worth: a full second's burst on top of the sustained
        // rate would let one wall-clock second see nearly twice the limit.
        let burst = NonZeroU32::new((settings.requests_per_second / 10).max(1)).expect("max(1)");
        let per_second = RateLimiter::direct(Quota::per_second(rps).allow_burst(burst));
        let hourly = NonZeroU32::new(settings.hourly_budget.max(1)).expect("max(1) is nonzero");
        // A token bucket holding the hour's budget and refilling at budget/3600 per second:
        // back-to-back runs (retries, a scheduler plus a manual trigger in one process) slow
        // down to the hourly pace once the budget is spent; within one guild sync the
        // per-second limiter is the one that binds.
        let per_hour = RateLimiter::direct(Quota::per_hour(hourly));
        Ok(BlizzardClient {
            inner: Arc::new(Inner {
                http,
                settings,
                per_second,
                per_hour,
                pacer: Pacer::new(pacer_rps),
                token: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The client for the configured guild.
    pub fn from_config(config: &Config) -> Result<Self> {
        Self::new(BlizzardSettings::from_config(config)?)
    }

    pub fn settings(&self) -> &BlizzardSettings {
        &self.inner.settings
    }

    /// The pace the client slowed down to after 429s, in requests per second; `None` while it
    /// runs at the configured rate.
    pub fn adaptive_pace(&self) -> Option<f64> {
        self.inner.pacer.current()
    }

    /// A valid token: the cached one, or a new one when it is missing, near expiry, or equal to
    /// `rejected` (the token a 401 came back for).
    async fn token(&self, rejected: Option<&str>) -> Result<String> {
        let mut cached = self.inner.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.renew_at
            && rejected != Some(token.value.as_str())
        {
            return Ok(token.value.clone());
        }
        let s = &self.inner.settings;
        let response = self
            .inner
            .http
            .post(&s.oauth_url)
            .basic_auth(&s.client_id, Some(s.client_secret.expose()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .context("cannot reach the Battle.net token endpoint")?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "the Battle.net token endpoint answered {status} (check BLIZZARD_CLIENT_ID and BLIZZARD_CLIENT_SECRET)"
            );
        }
        let token: TokenResponse = response
            .json()
            .await
            .context("the Battle.net token response is not a token")?;
        let lifetime = Duration::from_secs(token.expires_in);
        let renew_in = lifetime.saturating_sub(TOKEN_RENEW_MARGIN.min(lifetime / 2));
        tracing::debug!(expires_in = token.expires_in, "new Battle.net token");
        *cached = Some(CachedToken {
            value: token.access_token.clone(),
            renew_at: Instant::now() + renew_in,
        });
        Ok(token.access_token)
    }

    /// GET `path` under the API base with the profile namespace; retries 429/5xx/timeouts and
    /// renews the token once on a 401. Returns the final response (any status but those).
    async fn get(&self, path: &str) -> Result<reqwest::Response> {
        let s = &self.inner.settings;
        let url = format!("{}{}", s.api_base, path);
        let namespace = format!("profile-{}", s.region);
        let mut token = self.token(None).await?;
        let mut renewed = false;
        let mut retries = 0;
        // 429s answered while the pacer adapts: each says "later", not "broken", so they get
        // extra retries on top of `max_retries`.
        let mut throttled: u32 = 0;
        loop {
            let wait = self.inner.pacer.reserve();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            self.inner.per_hour.until_ready().await;
            self.inner.per_second.until_ready().await;
            let sent = self
                .inner
                .http
                .get(&url)
                .query(&[
                    ("namespace", namespace.as_str()),
                    ("locale", s.locale.as_str()),
                ])
                .bearer_auth(&token)
                .send()
                .await;
            let attempt = match sent {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !renewed => {
                    renewed = true;
                    token = self.token(Some(&token)).await?;
                    continue;
                }
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    self.inner.pacer.throttled();
                    throttled += 1;
                    Attempt::Retry(retry_after(&response), "429 Too Many Requests".into())
                }
                Ok(response) if response.status().is_server_error() => {
                    Attempt::Retry(None, format!("{}", response.status()))
                }
                Ok(response) => Attempt::Done(response),
                Err(err) if err.is_timeout() || err.is_connect() || err.is_request() => {
                    Attempt::Retry(None, format!("{err}"))
                }
                Err(err) => return Err(err).with_context(|| format!("GET {path} failed")),
            };
            match attempt {
                Attempt::Done(response) => {
                    self.inner.pacer.succeeded();
                    return Ok(response);
                }
                Attempt::Retry(after, why) => {
                    let extra = throttled.min(THROTTLED_EXTRA_RETRIES);
                    if retries >= s.max_retries + extra {
                        bail!("GET {path}: {why}, still failing after {retries} retries");
                    }
                    let delay = match after {
                        Some(after) if after > MAX_RETRY_AFTER => {
                            bail!("GET {path}: {why} with Retry-After {after:?}; giving up")
                        }
                        Some(after) => after,
                        None => jittered(s.base_backoff, retries.min(s.max_retries)),
                    };
                    retries += 1;
                    tracing::debug!(path, why, retry = retries, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// The guild roster.
    pub async fn roster(&self) -> Result<Roster> {
        let s = &self.inner.settings;
        let path = format!(
            "/data/wow/guild/{}/{}/roster",
            encode(&s.realm_slug.to_lowercase()),
            encode(&s.guild_slug.to_lowercase())
        );
        let response = self
            .get(&path)
            .await
            .context("cannot fetch the guild roster")?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "the guild roster request answered {status} (realm {:?}, guild {:?})",
                s.realm_slug,
                s.guild_slug
            );
        }
        let body = response
            .bytes()
            .await
            .context("cannot read the guild roster")?;
        parse_roster(&body)
    }

    /// One character's profile.
    pub async fn profile(&self, realm_slug: &str, name: &str) -> ProfileFetch {
        let path = profile_path(realm_slug, name);
        let outcome: Result<ProfileFetch> = async {
            let response = self.get(&path).await?;
            match response.status() {
                StatusCode::NOT_FOUND => Ok(ProfileFetch::NotFound),
                status if status.is_success() => {
                    let body = response.bytes().await.context("cannot read the body")?;
                    Ok(ProfileFetch::Found(Box::new(parse_profile(&body)?)))
                }
                status => Err(anyhow!("answered {status}")),
            }
        }
        .await;
        outcome.unwrap_or_else(|err| {
            tracing::warn!(realm_slug, name, error = %format!("{err:#}"), "profile fetch failed");
            ProfileFetch::Failed(format!("{err:#}"))
        })
    }

    /// Every member's profile (same order as the roster), fetched concurrently under the rate
    /// limiter. `on_profile` is called after each one (progress).
    pub async fn profiles(
        &self,
        roster: &Roster,
        on_profile: impl Fn() + Sync,
    ) -> Vec<ProfileFetch> {
        let on_profile = &on_profile;
        // Owned keys, not borrows of `roster`: a stream of futures over borrowed items defeats
        // the compiler's Send inference, and the scheduler runs this future on a worker thread.
        let keys: Vec<(usize, String, String)> = roster
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (i, m.character.realm.slug.clone(), m.character.name.clone()))
            .collect();
        let mut profiles: Vec<(usize, ProfileFetch)> = futures::stream::iter(keys)
            .map(|(i, realm_slug, name)| async move {
                let fetched = self.profile(&realm_slug, &name).await;
                on_profile();
                (i, fetched)
            })
            .buffer_unordered(PROFILE_CONCURRENCY)
            .collect()
            .await;
        profiles.sort_by_key(|(i, _)| *i);
        profiles.into_iter().map(|(_, p)| p).collect()
    }

    /// The roster and every member's profile.
    pub async fn fetch(&self) -> Result<FetchedRoster> {
        let roster = self.roster().await?;
        let profiles = self.profiles(&roster, || {}).await;
        Ok(FetchedRoster { roster, profiles })
    }
}

/// `/profile/wow/character/{realm}/{lowercased, percent-encoded name}`.
pub fn profile_path(realm_slug: &str, name: &str) -> String {
    format!(
        "/profile/wow/character/{}/{}",
        encode(&realm_slug.to_lowercase()),
        encode(&name.to_lowercase())
    )
}

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

/// `Retry-After` in seconds (Blizzard sends seconds; an HTTP date falls back to the backoff).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: f64 = value.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// Exponential backoff with equal jitter: uniform in [base·2ⁿ/2, base·2ⁿ], so concurrent
/// retries spread out instead of hitting the API together.
pub(crate) fn jittered(base: Duration, retry: u32) -> Duration {
    let ceiling = base.saturating_mul(1 << retry.min(10));
    let millis = ceiling.as_millis().max(1) as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

// ---------------------------------------------------------------------------------------------
// The file-backed source.

/// Read `roster.json` and `profiles/{realm_slug}/{lowercased name}.json` from `dir` with the
/// same parsers; a missing profile file is a 404. A malformed file fails the whole read, naming
/// the file, so nothing is applied from a broken export.
pub fn read_dir(dir: &Path, on_profile: impl Fn() + Sync) -> Result<FetchedRoster> {
    use rayon::prelude::*;
    let roster_path = dir.join("roster.json");
    let body = std::fs::read(&roster_path)
        .with_context(|| format!("cannot read {}", roster_path.display()))?;
    let roster = parse_roster(&body).with_context(|| format!("in {}", roster_path.display()))?;
    // A thousand small files: read and parsed on every core (issue 21), kept in roster order.
    let profiles = roster
        .members
        .par_iter()
        .map(|member| {
            let path = profile_file(dir, &member.character.realm.slug, &member.character.name);
            let fetched = match std::fs::read(&path) {
                Ok(body) => ProfileFetch::Found(Box::new(
                    parse_profile(&body).with_context(|| format!("in {}", path.display()))?,
                )),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => ProfileFetch::NotFound,
                Err(err) => {
                    return Err(err).with_context(|| format!("cannot read {}", path.display()));
                }
            };
            on_profile();
            Ok(fetched)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FetchedRoster { roster, profiles })
}

/// Where a character's profile lives in a `--from-dir` directory.
pub fn profile_file(dir: &Path, realm_slug: &str, name: &str) -> PathBuf {
    dir.join("profiles")
        .join(realm_slug.to_lowercase())
        .join(format!("{}.json", name.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_percent_encoded_in_the_path() {
        assert_eq!(
            profile_path("area-52", "Zatañña"),
            "/profile/wow/character/area-52/zata%C3%B1%C3%B1a"
        );
        assert_eq!(
            profile_path("Stormrage", "Arthas"),
            "/profile/wow/character/stormrage/arthas"
        );
    }

    #[test]
    fn parsers_tolerate_extra_fields_and_localized_names() {
        let roster = parse_roster(
            r#"{"_links":{},"guild":{"name":{"en_US":"Pull All The Things"},"realm":{"slug":"senjin","name":"Sen'jin","id":1}},
                "members":[{"character":{"id":7,"name":"Zatañña","level":80,"realm":{"id":1,"slug":"senjin"},
                "playable_class":{"id":11},"playable_race":{"id":4}},"rank":3}]}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(roster.guild.name, "Pull All The Things");
        assert_eq!(roster.members[0].character.name, "Zatañña");
        assert_eq!(roster.members[0].rank, 3);
        let profile = parse_profile(
            r#"{"id":7,"name":"Zatañña","realm":{"slug":"senjin","name":"Sen'jin"},"gender":{"type":"FEMALE"},
                "character_class":{"id":11,"name":"Druid"},"active_spec":{"id":102,"name":"Balance"},
                "equipped_item_level":639,"last_login_timestamp":1700000000000}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(profile.fields.equipped_item_level, Some(639));
        assert_eq!(profile.raw["gender"]["type"], "FEMALE");
        assert!(parse_profile(b"{\"name\": 3}").is_err());
    }

    #[test]
    fn backoff_grows_and_stays_within_its_ceiling() {
        for retry in 0..4 {
            let d = jittered(Duration::from_millis(100), retry);
            let ceiling = Duration::from_millis(100 << retry);
            assert!(d <= ceiling && d >= ceiling / 2, "{d:?} for retry {retry}");
        }
    }
}
