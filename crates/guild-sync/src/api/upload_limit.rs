//! The per-key rate limit of the addon upload route (issue 15, item 7): a flood of uploads is
//! answered 429 before its body is read, instead of each one being parsed, validated and queued.
//!
//! One token bucket per presented `X-API-Key` (governor's keyed limiter), holding
//! `GUILD_SYNC_UPLOADS_PER_MINUTE` uploads and refilling at that rate; `0` turns the limit off.
//! The middleware runs after [`super::auth::require_api_key`], so only a key that was accepted
//! gets a bucket: guessed keys cannot grow the map.
//!
//! Nothing is lost by refusing: only the newest export matters (the scheduler replaces a
//! waiting upload with a newer one), and the companion retries a 429 with backoff, sending
//! whatever export is newest by then.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::addon_processor::API_KEY_HEADER;
use crate::config::Config;

/// The upload limit of one service: `None` when it is turned off.
#[derive(Clone)]
pub struct UploadLimiter {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    per_minute: u32,
}

impl UploadLimiter {
    /// `per_minute` uploads per key and minute, in a burst or spread out; `0` = unlimited.
    pub fn per_minute(per_minute: u32) -> UploadLimiter {
        let limiter = NonZeroU32::new(per_minute)
            .map(|rate| Arc::new(RateLimiter::keyed(Quota::per_minute(rate))));
        UploadLimiter {
            limiter,
            per_minute,
        }
    }

    /// The limit `GUILD_SYNC_UPLOADS_PER_MINUTE` sets.
    pub fn from_config(config: &Config) -> UploadLimiter {
        Self::per_minute(config.guild_sync_uploads_per_minute)
    }

    /// Take one upload from `key`'s bucket, or say how many whole seconds until the next one
    /// is allowed (never 0, so a client that waits that long is let through).
    fn check(&self, key: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forget buckets that are full again, so keys that stopped uploading cost no memory.
    fn shrink(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
        }
    }
}

/// Middleware in front of `POST /api/guild-sync/addon-upload`, inside the key check: refuses an
/// upload over its key's rate with 429, `Retry-After` and a JSON error, before the body is read.
pub async fn limit_uploads(
    State(limiter): State<UploadLimiter>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // The key check ran first, so the header is present and right; an absent one (a route
    // wired without it) shares one bucket rather than going unlimited.
    let key = request
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if let Err(retry_after_seconds) = limiter.check(key) {
        limiter.shrink();
        tracing::warn!(
            retry_after_seconds,
            "addon upload refused: over the per-key rate limit"
        );
        return Err(ApiError::TooManyRequests {
            message: format!(
                "too many uploads: at most {} a minute per key; retry in {retry_after_seconds} s \
                 (only the newest export is applied, so nothing is lost)",
                limiter.per_minute
            ),
            retry_after_seconds,
        });
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits_and_other_keys_are_not_affected() {
        let limiter = UploadLimiter::per_minute(3);
        for n in 0..3 {
            assert_eq!(limiter.check("a"), Ok(()), "upload {n}");
        }
        let retry_after = limiter.check("a").expect_err("over the limit");
        // One upload refills every 20 s.
        assert!((1..=20).contains(&retry_after), "{retry_after}");
        assert_eq!(limiter.check("b"), Ok(()));
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = UploadLimiter::per_minute(0);
        for _ in 0..1_000 {
            assert_eq!(limiter.check("a"), Ok(()));
        }
    }
}
