//! What a pipeline is: its [`Step`]s, the [`PipelineKind`]s that order them, and what a run
//! returns — one typed [`StageStats`] per finished step in a [`PipelineOutcome`].

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::db_sync::BlizzardSyncStats;
use crate::db_sync::addon::AddonSyncStats;
use crate::discord_sync::DiscordSyncStats;
use crate::identity_engine::MatchStats;
use crate::integrity_checker::CheckStats;
use crate::reporter::ReportStats;
use crate::run_recorder::{RunStatus, StageTimings};

/// The stages a pipeline is made of, in the order they can appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    BlizzardSync,
    DiscordSync,
    AddonSync,
    Match,
    Check,
    Report,
}

impl Step {
    /// The step's name in logs and in the pipeline's `sync_log.details`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::BlizzardSync => "blizzard_sync",
            Step::DiscordSync => "discord_sync",
            Step::AddonSync => "addon_sync",
            Step::Match => "match",
            Step::Check => "check",
            Step::Report => "report",
        }
    }

    /// Whether the step brings a source into the database (the steps a sync summary is about).
    pub fn is_sync(self) -> bool {
        matches!(
            self,
            Step::BlizzardSync | Step::DiscordSync | Step::AddonSync
        )
    }
}

/// An addon export to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddonInput {
    /// A SavedVariables `PATTSync.lua` or an upload `.json` on disk.
    File(PathBuf),
    /// An upload the API has already parsed and validated.
    Upload(Arc<guild_sync_core::addon::AddonExport>),
}

/// Which pipeline to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineKind {
    /// Battle.net sync → match → check → report (on the cron schedule).
    Blizzard,
    /// Discord member sync → match → check → report (every interval).
    Discord,
    /// Addon sync → match → check → report (after an upload).
    Addon(AddonInput),
    /// Only the report (an officer's trigger).
    Report,
    /// Every stage once: Battle.net, Discord, the addon file if any, match, check, report
    /// (`guild-sync pipeline`, the demo and the benchmark).
    Full { addon: Option<AddonInput> },
}

impl PipelineKind {
    /// `sync_log.source` of the pipeline's own row.
    pub fn source(&self) -> &'static str {
        match self {
            PipelineKind::Blizzard => "pipeline:blizzard",
            PipelineKind::Discord => "pipeline:discord",
            PipelineKind::Addon(_) => "pipeline:addon",
            PipelineKind::Report => "pipeline:report",
            PipelineKind::Full { .. } => "pipeline:full",
        }
    }

    /// The steps, in the order they run.
    pub fn steps(&self) -> Vec<Step> {
        const TAIL: [Step; 3] = [Step::Match, Step::Check, Step::Report];
        let mut steps = match self {
            PipelineKind::Blizzard => vec![Step::BlizzardSync],
            PipelineKind::Discord => vec![Step::DiscordSync],
            PipelineKind::Addon(_) => vec![Step::AddonSync],
            PipelineKind::Report => return vec![Step::Report],
            PipelineKind::Full { addon } => {
                let mut steps = vec![Step::BlizzardSync, Step::DiscordSync];
                if addon.is_some() {
                    steps.push(Step::AddonSync);
                }
                steps
            }
        };
        steps.extend(TAIL);
        steps
    }

    /// The addon export this pipeline applies, if it has an addon step.
    pub fn addon_input(&self) -> Option<&AddonInput> {
        match self {
            PipelineKind::Addon(input) => Some(input),
            PipelineKind::Full { addon } => addon.as_ref(),
            _ => None,
        }
    }
}

/// What the report step did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportOutcome {
    /// Sent through Discord.
    Sent(ReportStats),
    /// Not sent: no Discord sender is configured.
    NoSender,
    /// Rendered as text for the terminal (the `pipeline --stdout` command and the demo).
    Rendered { text: String },
}

/// Stored in `sync_log.details` as the stats of a send, or `{"sent": false, …}`; the rendered
/// text itself stays out of the database.
impl Serialize for ReportOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct NotSent<'a> {
            sent: bool,
            reason: &'a str,
        }
        #[derive(Serialize)]
        struct Rendered {
            sent: bool,
            rendered_lines: usize,
        }
        match self {
            ReportOutcome::Sent(stats) => stats.serialize(serializer),
            ReportOutcome::NoSender => NotSent {
                sent: false,
                reason: "no Discord sender configured",
            }
            .serialize(serializer),
            ReportOutcome::Rendered { text } => Rendered {
                sent: false,
                rendered_lines: text.lines().count(),
            }
            .serialize(serializer),
        }
    }
}

/// One finished step's stats, typed by the step that produced them. Serialized as the stats
/// alone (the step names them in `sync_log.details`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StageStats {
    BlizzardSync(BlizzardSyncStats),
    DiscordSync(DiscordSyncStats),
    AddonSync(AddonSyncStats),
    Match(MatchStats),
    Check(CheckStats),
    Report(ReportOutcome),
}

impl StageStats {
    /// The step these stats belong to.
    pub fn step(&self) -> Step {
        match self {
            StageStats::BlizzardSync(_) => Step::BlizzardSync,
            StageStats::DiscordSync(_) => Step::DiscordSync,
            StageStats::AddonSync(_) => Step::AddonSync,
            StageStats::Match(_) => Step::Match,
            StageStats::Check(_) => Step::Check,
            StageStats::Report(_) => Step::Report,
        }
    }
}

/// One finished step of a pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    pub step: Step,
    pub stats: StageStats,
    /// The step's wall time, as the pipeline saw it.
    pub seconds: f64,
    /// Where the step spent it (load, plan, apply), where the stage measured that.
    #[serde(flatten)]
    pub timings: StageTimings,
}

/// How a pipeline run ended.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineOutcome {
    /// The pipeline's own `sync_log` id.
    pub run_id: i64,
    pub source: &'static str,
    pub status: RunStatus,
    /// Each step that finished, in order, with its stats.
    pub stages: Vec<StageOutcome>,
    /// The step that failed, if one did (the pipeline stopped there).
    pub failed_step: Option<Step>,
    pub error: Option<String>,
    pub duration_seconds: f64,
}

impl PipelineOutcome {
    /// The stats of `step`, if it finished.
    pub fn stats(&self, step: Step) -> Option<&StageStats> {
        self.stages
            .iter()
            .find(|s| s.step == step)
            .map(|s| &s.stats)
    }

    /// The text the report step rendered, if it rendered one.
    pub fn report_text(&self) -> Option<&str> {
        match self.stats(Step::Report) {
            Some(StageStats::Report(ReportOutcome::Rendered { text })) => Some(text),
            _ => None,
        }
    }

    /// Each finished step's wall time and parts by step name (`seconds`, `load_seconds`,
    /// `plan_seconds`, `apply_seconds`), as stored under `timings` in `sync_log.details`.
    pub fn timings(&self) -> serde_json::Value {
        let timings: serde_json::Map<String, serde_json::Value> = self
            .stages
            .iter()
            .map(|s| {
                let t = s.timings;
                (
                    s.step.as_str().to_string(),
                    serde_json::json!({
                        "seconds": s.seconds,
                        "load_seconds": t.load_seconds,
                        "plan_seconds": t.plan_seconds,
                        "apply_seconds": t.apply_seconds,
                    }),
                )
            })
            .collect();
        serde_json::Value::Object(timings)
    }

    /// The pipeline's `sync_log.details`: every finished step's stats by step name, each
    /// step's timings, and the step that failed.
    pub fn details(&self) -> serde_json::Value {
        let stages: serde_json::Map<String, serde_json::Value> = self
            .stages
            .iter()
            .map(|s| {
                let stats = serde_json::to_value(&s.stats)
                    .unwrap_or_else(|err| serde_json::json!({ "unrecordable": err.to_string() }));
                (s.step.as_str().to_string(), stats)
            })
            .collect();
        serde_json::json!({
            "stages": stages,
            "timings": self.timings(),
            "failed_step": self.failed_step,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pipeline_ends_with_match_check_report_except_the_report_trigger() {
        let file = AddonInput::File("x.lua".into());
        let cases = [
            (
                PipelineKind::Blizzard,
                vec![Step::BlizzardSync, Step::Match, Step::Check, Step::Report],
            ),
            (
                PipelineKind::Discord,
                vec![Step::DiscordSync, Step::Match, Step::Check, Step::Report],
            ),
            (
                PipelineKind::Addon(file.clone()),
                vec![Step::AddonSync, Step::Match, Step::Check, Step::Report],
            ),
            (PipelineKind::Report, vec![Step::Report]),
            (
                PipelineKind::Full { addon: None },
                vec![
                    Step::BlizzardSync,
                    Step::DiscordSync,
                    Step::Match,
                    Step::Check,
                    Step::Report,
                ],
            ),
            (
                PipelineKind::Full { addon: Some(file) },
                vec![
                    Step::BlizzardSync,
                    Step::DiscordSync,
                    Step::AddonSync,
                    Step::Match,
                    Step::Check,
                    Step::Report,
                ],
            ),
        ];
        for (kind, steps) in cases {
            assert_eq!(kind.steps(), steps, "{kind:?}");
        }
    }

    #[test]
    fn the_details_hold_each_steps_stats_and_no_report_text() {
        let outcome = PipelineOutcome {
            run_id: 1,
            source: "pipeline:report",
            status: RunStatus::Success,
            stages: vec![
                StageOutcome {
                    step: Step::Check,
                    stats: StageStats::Check(CheckStats {
                        new: 3,
                        ..CheckStats::default()
                    }),
                    seconds: 0.25,
                    timings: StageTimings {
                        load_seconds: Some(0.125),
                        plan_seconds: None,
                        apply_seconds: Some(0.0625),
                    },
                },
                StageOutcome {
                    step: Step::Report,
                    stats: StageStats::Report(ReportOutcome::Rendered {
                        text: "a\nb\n".into(),
                    }),
                    seconds: 0.5,
                    timings: StageTimings::default(),
                },
            ],
            failed_step: None,
            error: None,
            duration_seconds: 0.0,
        };
        let details = outcome.details();
        assert_eq!(details["stages"]["check"]["new"], 3);
        assert_eq!(
            details["stages"]["report"],
            serde_json::json!({ "sent": false, "rendered_lines": 2 })
        );
        assert_eq!(details["failed_step"], serde_json::Value::Null);
        assert_eq!(
            details["timings"]["check"],
            serde_json::json!({
                "seconds": 0.25, "load_seconds": 0.125, "plan_seconds": null, "apply_seconds": 0.0625
            })
        );
        assert_eq!(details["timings"]["report"]["seconds"], 0.5);
        assert_eq!(outcome.report_text(), Some("a\nb\n"));
    }
}
