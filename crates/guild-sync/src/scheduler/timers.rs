//! When scheduled pipelines run: the [`Schedule`] the configuration allows, and the two timer
//! loops ([`every`] for the Discord interval, [`on_cron`] for the Battle.net cron) that run a
//! job until the service's cancellation token fires.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// When the scheduled jobs run; `None` disables a job.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub blizzard_cron: Option<cron::Schedule>,
    pub discord_interval: Option<Duration>,
}

impl Schedule {
    /// The schedule the configuration allows. A job whose source is not configured (or whose
    /// schedule is invalid) is disabled with one log line naming what is missing.
    pub fn from_config(config: &Config) -> Schedule {
        let mut schedule = Schedule::default();
        let blizzard_missing = config.missing_blizzard_settings();
        if !blizzard_missing.is_empty() {
            tracing::warn!(
                missing = %blizzard_missing.join(", "),
                "Battle.net job disabled: configuration missing"
            );
        } else {
            match cron::Schedule::from_str(&config.guild_sync_blizzard_cron) {
                Ok(cron) => schedule.blizzard_cron = Some(cron),
                Err(err) => tracing::error!(
                    cron = %config.guild_sync_blizzard_cron,
                    error = %err,
                    "Battle.net job disabled: GUILD_SYNC_BLIZZARD_CRON is not a valid cron expression"
                ),
            }
        }
        let discord_missing = config.missing_discord_settings();
        if !discord_missing.is_empty() {
            tracing::warn!(
                missing = %discord_missing.join(", "),
                "Discord job disabled: configuration missing"
            );
        } else if config.guild_sync_discord_interval_minutes == 0 {
            tracing::error!(
                "Discord job disabled: GUILD_SYNC_DISCORD_INTERVAL_MINUTES must be at least 1"
            );
        } else {
            schedule.discord_interval = Some(Duration::from_secs(
                config.guild_sync_discord_interval_minutes * 60,
            ));
        }
        schedule
    }
}

/// Run `job` at once and then every `period` until `shutdown` is cancelled. A job that overruns
/// its period delays the next one rather than queueing runs. Uses tokio time, so tests drive it
/// with `tokio::time::pause()`.
pub async fn every<F, Fut>(period: Duration, shutdown: CancellationToken, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => job().await,
        }
    }
}

/// Run `job` at every upcoming time of `schedule` (UTC) until `shutdown` is cancelled.
pub async fn on_cron<F, Fut>(schedule: cron::Schedule, shutdown: CancellationToken, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            tracing::warn!("the Battle.net cron schedule has no upcoming time; job stopped");
            break;
        };
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => job().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cron_runs_four_times_a_day_at_the_documented_hours() {
        let cron = cron::Schedule::from_str(&Config::defaults().guild_sync_blizzard_cron).unwrap();
        let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let hours: Vec<String> = cron
            .after(&start)
            .take(5)
            .map(|t| t.format("%d %H:%M:%S").to_string())
            .collect();
        assert_eq!(
            hours,
            [
                "01 01:00:00",
                "01 07:00:00",
                "01 13:00:00",
                "01 19:00:00",
                "02 01:00:00"
            ]
        );
    }

    #[test]
    fn missing_credentials_disable_only_their_job() {
        let mut config = Config::defaults();
        config.discord_bot_token = Some(crate::config::Secret::new("t"));
        config.discord_guild_id = Some("1".into());
        let schedule = Schedule::from_config(&config);
        assert!(schedule.blizzard_cron.is_none());
        assert_eq!(
            schedule.discord_interval,
            Some(Duration::from_secs(15 * 60))
        );
    }
}
