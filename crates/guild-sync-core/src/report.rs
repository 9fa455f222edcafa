//! Report rendering: audit issues to Discord embeds split into messages within Discord's
//! limits, the same report as plain text, and the sync-summary embed. Pure: the reporter loads
//! the rows and sends what this returns; nothing here talks to Discord or the database.
//!
//! Layout: a header embed (totals per type), then one embed per issue type in
//! [`IssueType::ALL`] order with an emoji, a readable title and the count, at most
//! [`MAX_LINES_PER_TYPE`] lines then `…and N more`, coloured by the group's highest severity.
//! An issue counts as carried by the message holding its type's embed (also when it is only in
//! the `…and N more` count), so that message being accepted is what marks it notified.

use serde::Serialize;
use serde_json::json;

use crate::integrity::{IssueType, Severity, character_label, discord_label, player_with_discord};

/// Discord: at most this many embeds in one message.
pub const MAX_EMBEDS_PER_MESSAGE: usize = 10;
/// Discord: the title, description, fields, footer and author of all embeds of one message
/// together, in characters.
pub const MAX_MESSAGE_CHARS: usize = 6000;
/// Discord: characters in one embed description.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
/// Discord: characters in one embed title.
pub const MAX_TITLE_CHARS: usize = 256;
/// Lines listed per issue type before `…and N more`.
pub const MAX_LINES_PER_TYPE: usize = 20;
/// Characters in one issue line; 20 lines of this stay well inside a description.
pub const MAX_LINE_CHARS: usize = 190;

/// Discord: buttons in one action row.
pub const MAX_BUTTONS_PER_ROW: usize = 5;
/// Discord: action rows in one message.
pub const MAX_ACTION_ROWS: usize = 5;
/// Discord: characters in one button label.
pub const MAX_BUTTON_LABEL_CHARS: usize = 80;

/// Embed colours (RGB) per severity.
pub const COLOR_INFO: u32 = 0x3498DB;
pub const COLOR_WARNING: u32 = 0xF39C12;
pub const COLOR_CRITICAL: u32 = 0xE74C3C;
/// The colour of a sync summary with nothing wrong.
pub const COLOR_OK: u32 = 0x2ECC71;

/// An unresolved issue with the current display names of what it involves (JOINed from
/// `wow_characters`, `discord_users` and `players`; `None` when the row is gone).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportIssue {
    pub id: i32,
    pub issue_type: Option<IssueType>,
    pub severity: Option<Severity>,
    pub summary: String,
    /// `details.reason` as the checker wrote it.
    pub reason: Option<String>,
    pub character_name: Option<String>,
    pub realm_slug: Option<String>,
    pub discord_username: Option<String>,
    pub discord_display_name: Option<String>,
    pub player_name: Option<String>,
}

/// One Discord embed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Embed {
    pub title: String,
    pub description: String,
    pub color: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<EmbedField>,
}

/// One embed field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbedField {
    pub name: String,
    pub value: String,
    pub inline: bool,
}

impl Embed {
    /// The characters Discord counts towards the 6,000 per message.
    pub fn chars(&self) -> usize {
        discord_len(&self.title)
            + discord_len(&self.description)
            + self
                .fields
                .iter()
                .map(|f| discord_len(&f.name) + discord_len(&f.value))
                .sum::<usize>()
    }
}

/// What a button on a report line does (issue 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonAction {
    /// Accept a link suggestion.
    Link,
    /// Dismiss a link suggestion: not the same person.
    NotThem,
    /// Show the best link candidates of an orphan character or member.
    Candidates,
}

/// A button for one issue line; the sender turns it into a Discord button with a signed
/// `custom_id` (the core holds no key).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportButton {
    pub action: ButtonAction,
    pub issue_id: i32,
    /// Plain text (Discord renders no markdown in labels), one line, at most
    /// [`MAX_BUTTON_LABEL_CHARS`].
    pub label: String,
}

/// One message to send, and the issues it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportMessage {
    pub embeds: Vec<Embed>,
    pub issue_ids: Vec<i32>,
    /// Buttons for the actionable lines shown in this message, in line order (a suggestion's
    /// two buttons next to each other).
    pub buttons: Vec<ReportButton>,
}

impl ReportMessage {
    /// The JSON body Discord expects. Mentions are disabled: names come from user input.
    pub fn payload(&self) -> serde_json::Value {
        json!({ "embeds": self.embeds, "allowed_mentions": { "parse": [] } })
    }

    /// [`Self::payload`] with the buttons as action rows, each button's `custom_id` made by
    /// `custom_id`. Discord takes at most [`MAX_ACTION_ROWS`] rows of [`MAX_BUTTONS_PER_ROW`]:
    /// one issue's buttons stay in one row, suggestions (settled in one press) come before
    /// orphans, and the lines past what fits get no buttons (the console still has them).
    pub fn payload_with_buttons(
        &self,
        custom_id: impl Fn(&ReportButton) -> String,
    ) -> serde_json::Value {
        let mut groups: Vec<&[ReportButton]> = self
            .buttons
            .chunk_by(|a, b| a.issue_id == b.issue_id)
            .collect();
        // Stable: line order within each kind.
        groups.sort_by_key(|g| g[0].action != ButtonAction::Link);
        let mut rows: Vec<Vec<serde_json::Value>> = Vec::new();
        for group in groups {
            let fits = rows
                .last()
                .is_some_and(|row| row.len() + group.len() <= MAX_BUTTONS_PER_ROW);
            if !fits {
                if rows.len() == MAX_ACTION_ROWS {
                    break;
                }
                rows.push(Vec::new());
            }
            let row = rows.last_mut().expect("a row was just ensured");
            row.extend(group.iter().map(|button| {
                json!({
                    "type": 2,
                    "style": button_style(button.action),
                    "label": button.label,
                    "custom_id": custom_id(button),
                })
            }));
        }
        let mut payload = self.payload();
        if !rows.is_empty() {
            payload["components"] = rows
                .into_iter()
                .map(|row| json!({"type": 1, "components": row}))
                .collect();
        }
        payload
    }
}

/// Discord button styles: primary 1, secondary 2, success 3.
fn button_style(action: ButtonAction) -> u8 {
    match action {
        ButtonAction::Link => 3,
        ButtonAction::NotThem => 2,
        ButtonAction::Candidates => 1,
    }
}

/// Length as Discord counts it. UTF-16 units are never fewer than characters, so counting
/// them keeps us inside the limit whichever way Discord counts.
pub fn discord_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `s` cut to at most `max` (as [`discord_len`] counts), ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if discord_len(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() > max.saturating_sub(1) {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

/// The emoji of an issue type.
pub fn emoji(issue_type: IssueType) -> &'static str {
    match issue_type {
        IssueType::RankMismatch => "🎖️",
        IssueType::DuplicateDiscord => "👥",
        IssueType::OrphanDiscord => "💬",
        IssueType::OrphanWow => "🧙",
        IssueType::NoGuildRole => "🏷️",
        IssueType::AutoLinkSuggestion => "🔗",
        IssueType::StaleCharacter => "💤",
        IssueType::InactivePlayer => "🛌",
        IssueType::FormerMemberHasRole => "🚪",
        IssueType::ClaimConflict => "🪪",
    }
}

/// The readable name of an issue type.
pub fn type_title(issue_type: IssueType) -> &'static str {
    match issue_type {
        IssueType::RankMismatch => "Rank mismatches",
        IssueType::DuplicateDiscord => "Discord accounts on several players",
        IssueType::OrphanDiscord => "Discord members without a player",
        IssueType::OrphanWow => "Characters without a player",
        IssueType::NoGuildRole => "Members without a guild role on Discord",
        IssueType::AutoLinkSuggestion => "Suggested links to confirm",
        IssueType::StaleCharacter => "Stale characters",
        IssueType::InactivePlayer => "Inactive players",
        IssueType::FormerMemberHasRole => "Former members keeping a guild role",
        IssueType::ClaimConflict => "Claims that conflict with an officer's link or another claim",
    }
}

/// The embed colour of a severity.
pub fn severity_color(severity: Severity) -> u32 {
    match severity {
        Severity::Info => COLOR_INFO,
        Severity::Warning => COLOR_WARNING,
        Severity::Critical => COLOR_CRITICAL,
    }
}

/// Escape Discord markdown in a name so `_x_` or `**` in a nickname cannot break the layout.
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl ReportIssue {
    /// Who or what the issue is about, from the JOINed names.
    pub fn subject(&self) -> Option<String> {
        let character = match (&self.character_name, &self.realm_slug) {
            (Some(n), Some(r)) => Some(character_label(n, r)),
            _ => None,
        };
        let discord = self
            .discord_username
            .as_deref()
            .map(|u| discord_label(self.discord_display_name.as_deref(), u));
        match self.issue_type? {
            IssueType::OrphanWow | IssueType::StaleCharacter => character,
            IssueType::OrphanDiscord | IssueType::DuplicateDiscord => discord,
            IssueType::RankMismatch | IssueType::InactivePlayer => self.player_name.clone(),
            IssueType::NoGuildRole | IssueType::FormerMemberHasRole => {
                match (&self.player_name, &self.discord_username) {
                    (Some(p), Some(u)) => Some(player_with_discord(p, u)),
                    (p, _) => p.clone(),
                }
            }
            IssueType::AutoLinkSuggestion => Some(format!("{} ↔ {}", character?, discord?)),
            IssueType::ClaimConflict => match character {
                Some(character) => Some(format!("{character} ↔ {}", discord?)),
                None => discord,
            },
        }
    }

    /// The issue as one line: the current names and the reason when both are known, else the
    /// summary the checker wrote.
    ///
    /// Names are untrusted: control characters and escape sequences are removed and line
    /// breaks joined (one issue, one line) in both forms; in the embed, links are also broken.
    fn line(&self, markdown: bool) -> String {
        let line = match (self.subject(), &self.reason) {
            // The reason names people too (a claim's BattleTag and both players, the holders
            // of a shared Discord account, a rank's character): escaped like the subject.
            (Some(subject), Some(reason)) if markdown => format!(
                "**{}** — {}",
                escape_markdown(&subject),
                escape_markdown(reason)
            ),
            (Some(subject), Some(reason)) => format!("{subject} — {reason}"),
            _ if markdown => escape_markdown(&self.summary),
            _ => self.summary.clone(),
        };
        let line = crate::text::one_line(&line);
        let line = if markdown {
            crate::text::unlinked(&line)
        } else {
            line
        };
        truncate(&format!("• {line}"), MAX_LINE_CHARS)
    }

    /// The buttons of this issue's line: *Link* and *Not them* on a suggestion, *Candidates* on
    /// an orphan; none on other types.
    pub fn buttons(&self) -> Vec<ReportButton> {
        let subject =
            crate::text::one_line(&self.subject().unwrap_or_else(|| self.summary.clone()));
        let button = |action, label: String| ReportButton {
            action,
            issue_id: self.id,
            label: truncate(&label, MAX_BUTTON_LABEL_CHARS),
        };
        match self.issue_type {
            Some(IssueType::AutoLinkSuggestion) => vec![
                button(ButtonAction::Link, format!("Link {subject}")),
                button(ButtonAction::NotThem, format!("Not them: {subject}")),
            ],
            Some(IssueType::OrphanWow | IssueType::OrphanDiscord) => {
                vec![button(
                    ButtonAction::Candidates,
                    format!("Candidates: {subject}"),
                )]
            }
            _ => Vec::new(),
        }
    }

    fn severity_or_default(&self) -> Severity {
        self.severity
            .or_else(|| self.issue_type.map(IssueType::severity))
            .unwrap_or(Severity::Info)
    }
}

/// Issues grouped by type, in report order; unknown types are left out.
fn groups(issues: &[ReportIssue]) -> Vec<(IssueType, Vec<&ReportIssue>)> {
    IssueType::ALL
        .into_iter()
        .map(|t| {
            (
                t,
                issues
                    .iter()
                    .filter(|i| i.issue_type == Some(t))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, g)| !g.is_empty())
        .collect()
}

fn headline(count: usize, full: bool) -> String {
    let plural = if count == 1 { "" } else { "s" };
    if full {
        format!("{count} unresolved issue{plural} (full report)")
    } else {
        format!("{count} new issue{plural}")
    }
}

fn type_embed(issue_type: IssueType, group: &[&ReportIssue]) -> Embed {
    let mut description = String::new();
    let shown = group.len().min(MAX_LINES_PER_TYPE);
    for issue in &group[..shown] {
        description.push_str(&issue.line(true));
        description.push('\n');
    }
    if group.len() > shown {
        description.push_str(&format!("…and {} more", group.len() - shown));
    }
    let severity = group
        .iter()
        .map(|i| i.severity_or_default())
        .max()
        .unwrap_or(Severity::Info);
    Embed {
        title: truncate(
            &format!(
                "{} {} ({})",
                emoji(issue_type),
                type_title(issue_type),
                group.len()
            ),
            MAX_TITLE_CHARS,
        ),
        description: truncate(description.trim_end(), MAX_DESCRIPTION_CHARS),
        color: severity_color(severity),
        fields: Vec::new(),
    }
}

/// Render the report as Discord messages: header embed first, then one embed per type, packed
/// greedily into messages of at most [`MAX_EMBEDS_PER_MESSAGE`] embeds and
/// [`MAX_MESSAGE_CHARS`] characters. No issues → no messages.
pub fn render_messages(issues: &[ReportIssue], full: bool) -> Vec<ReportMessage> {
    let groups = groups(issues);
    if groups.is_empty() {
        return Vec::new();
    }
    let total: usize = groups.iter().map(|(_, g)| g.len()).sum();
    let mut header_lines = vec![format!("**{}**", headline(total, full))];
    for (t, g) in &groups {
        header_lines.push(format!("{} {}: {}", emoji(*t), type_title(*t), g.len()));
    }
    let worst = issues
        .iter()
        .map(ReportIssue::severity_or_default)
        .max()
        .unwrap_or(Severity::Info);
    let header = Embed {
        title: "🛡️ Guild audit report".to_string(),
        description: truncate(&header_lines.join("\n"), MAX_DESCRIPTION_CHARS),
        color: severity_color(worst),
        fields: Vec::new(),
    };

    let mut embeds: Vec<(Embed, Vec<i32>, Vec<ReportButton>)> =
        vec![(header, Vec::new(), Vec::new())];
    for (t, g) in &groups {
        // Buttons only for the lines the embed shows, not those in `…and N more`.
        let buttons = g[..g.len().min(MAX_LINES_PER_TYPE)]
            .iter()
            .flat_map(|i| i.buttons())
            .collect();
        embeds.push((type_embed(*t, g), g.iter().map(|i| i.id).collect(), buttons));
    }

    let mut messages: Vec<ReportMessage> = Vec::new();
    let mut current = ReportMessage {
        embeds: Vec::new(),
        issue_ids: Vec::new(),
        buttons: Vec::new(),
    };
    let mut chars = 0;
    for (embed, ids, buttons) in embeds {
        let size = embed.chars();
        if !current.embeds.is_empty()
            && (current.embeds.len() == MAX_EMBEDS_PER_MESSAGE || chars + size > MAX_MESSAGE_CHARS)
        {
            messages.push(std::mem::replace(
                &mut current,
                ReportMessage {
                    embeds: Vec::new(),
                    issue_ids: Vec::new(),
                    buttons: Vec::new(),
                },
            ));
            chars = 0;
        }
        chars += size;
        current.embeds.push(embed);
        current.issue_ids.extend(ids);
        current.buttons.extend(buttons);
    }
    messages.push(current);
    messages
}

/// The same report as plain text for a terminal: every issue listed, no limits.
pub fn render_text(issues: &[ReportIssue], full: bool) -> String {
    let groups = groups(issues);
    if groups.is_empty() {
        return if full {
            "Guild audit report: no unresolved issues.".to_string()
        } else {
            "Guild audit report: no new issues.".to_string()
        };
    }
    let total: usize = groups.iter().map(|(_, g)| g.len()).sum();
    let mut out = format!("Guild audit report — {}\n", headline(total, full));
    for (t, g) in &groups {
        let severity = g
            .iter()
            .map(|i| i.severity_or_default())
            .max()
            .unwrap_or(Severity::Info);
        out.push_str(&format!(
            "\n{} {} ({}) [{}]\n",
            emoji(*t),
            type_title(*t),
            g.len(),
            severity.as_str()
        ));
        for issue in g {
            out.push_str("  ");
            out.push_str(&issue.line(false));
            out.push('\n');
        }
    }
    out
}

/// Stat keys whose non-zero value makes a sync run worth telling the officers about.
const NOTABLE_KEY_PARTS: &[&str] = &[
    "new", "removed", "created", "linked", "resolved", "returned", "departed", "error", "failed",
];

/// Whether a sync run's stats hold something notable: a non-zero count of new, removed,
/// linked, resolved or failed things, or an error/partial status.
pub fn is_notable(stats: &serde_json::Value) -> bool {
    let Some(map) = stats.as_object() else {
        return false;
    };
    map.iter().any(|(key, value)| {
        let key = key.to_ascii_lowercase();
        let notable_key = NOTABLE_KEY_PARTS.iter().any(|part| key.contains(part));
        match value {
            serde_json::Value::Number(n) => notable_key && n.as_f64().is_some_and(|v| v != 0.0),
            serde_json::Value::String(s) => {
                (key == "status" && matches!(s.as_str(), "error" | "partial"))
                    || (key == "error" && !s.is_empty())
            }
            serde_json::Value::Array(a) => notable_key && !a.is_empty(),
            _ => false,
        }
    })
}

/// The sync-summary embed, or `None` when nothing notable happened. Numeric stats become
/// fields (Discord allows 25 per embed).
pub fn render_sync_summary(
    source: &str,
    stats: &serde_json::Value,
    duration_seconds: f64,
) -> Option<Embed> {
    if !is_notable(stats) {
        return None;
    }
    let failed = stats.get("status").and_then(|s| s.as_str()) == Some("error")
        || stats
            .get("error")
            .and_then(|s| s.as_str())
            .is_some_and(|s| !s.is_empty());
    let fields = stats
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            v.as_number().map(|n| EmbedField {
                name: truncate(&k.replace('_', " "), MAX_TITLE_CHARS),
                value: n.to_string(),
                inline: true,
            })
        })
        .take(25)
        .collect();
    let mut description = format!("Finished in {duration_seconds:.1} s.");
    if let Some(error) = stats.get("error").and_then(|s| s.as_str()) {
        description.push_str(&format!("\nError: {}", escape_markdown(error)));
    }
    Some(Embed {
        title: truncate(&format!("🔄 Sync summary: {source}"), MAX_TITLE_CHARS),
        description: truncate(&description, MAX_DESCRIPTION_CHARS),
        color: if failed { COLOR_CRITICAL } else { COLOR_OK },
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(id: i32, t: IssueType, name: &str) -> ReportIssue {
        ReportIssue {
            id,
            issue_type: Some(t),
            severity: Some(t.severity()),
            summary: format!("{name}: summary"),
            reason: Some("something is off".into()),
            character_name: Some(name.into()),
            realm_slug: Some("area-52".into()),
            discord_username: Some(name.to_lowercase()),
            discord_display_name: Some(name.into()),
            player_name: Some(name.into()),
        }
    }

    /// Every Discord limit, checked on a rendered report.
    pub(crate) fn assert_within_limits(messages: &[ReportMessage]) {
        for m in messages {
            assert!(!m.embeds.is_empty());
            assert!(m.embeds.len() <= MAX_EMBEDS_PER_MESSAGE);
            assert!(m.embeds.iter().map(Embed::chars).sum::<usize>() <= MAX_MESSAGE_CHARS);
            for e in &m.embeds {
                assert!(discord_len(&e.title) <= MAX_TITLE_CHARS);
                assert!(discord_len(&e.description) <= MAX_DESCRIPTION_CHARS);
            }
        }
    }

    #[test]
    fn suggestions_and_orphans_get_buttons_within_discords_five_rows_of_five() {
        // 30 suggestions (2 buttons each) and 5 orphans: more than one message's 25 buttons.
        let mut issues: Vec<ReportIssue> = (1..=30)
            .map(|i| issue(i, IssueType::AutoLinkSuggestion, &format!("Sugg{i}")))
            .collect();
        issues.extend((31..=35).map(|i| issue(i, IssueType::OrphanWow, &format!("Orph{i}"))));
        issues.push(issue(36, IssueType::StaleCharacter, "Stale"));
        let messages = render_messages(&issues, false);
        let buttons: Vec<&ReportButton> = messages.iter().flat_map(|m| &m.buttons).collect();
        // Only the 20 shown suggestion lines get buttons, and no stale line does.
        assert_eq!(buttons.len(), 20 * 2 + 5);
        assert!(
            buttons
                .iter()
                .all(|b| b.issue_id <= 35 && b.label.chars().count() <= 80)
        );
        assert_eq!(
            buttons[0].label, "Candidates: Orph31-area-52",
            "orphans come first"
        );
        assert_eq!(buttons[5].label, "Link Sugg1-area-52 ↔ Sugg1 (@sugg1)");

        let payload =
            messages[0].payload_with_buttons(|b| format!("id-{}-{:?}", b.issue_id, b.action));
        let rows = payload["components"].as_array().unwrap();
        assert_eq!(rows.len(), MAX_ACTION_ROWS);
        for row in rows {
            let row = row["components"].as_array().unwrap();
            assert!(row.len() <= MAX_BUTTONS_PER_ROW);
            // A suggestion's pair never splits across rows.
            let links = row.iter().filter(|b| b["style"] == 3).count();
            let not_them = row.iter().filter(|b| b["style"] == 2).count();
            assert_eq!(links, not_them, "{row:?}");
        }
        // Suggestions first (settled in one press), two to a row: 10 fill the 5 rows.
        assert_eq!(rows[0]["components"][0]["custom_id"], "id-1-Link");
        assert_eq!(rows[0]["components"][1]["custom_id"], "id-1-NotThem");
        assert_eq!(rows[4]["components"][3]["custom_id"], "id-10-NotThem");
        assert_eq!(payload["embeds"], messages[0].payload()["embeds"]);
        // A message without buttons has no components key.
        let plain = render_messages(&[issue(1, IssueType::StaleCharacter, "x")], false);
        assert!(
            plain[0]
                .payload_with_buttons(|_| unreachable!())
                .get("components")
                .is_none()
        );
    }

    #[test]
    fn no_issues_render_no_message() {
        assert!(render_messages(&[], false).is_empty());
        assert_eq!(
            render_text(&[], false),
            "Guild audit report: no new issues."
        );
    }

    #[test]
    fn a_type_lists_twenty_lines_then_the_rest_as_a_count() {
        let issues: Vec<_> = (0..25)
            .map(|i| issue(i, IssueType::OrphanWow, &format!("Char{i}")))
            .collect();
        let messages = render_messages(&issues, false);
        assert_eq!(messages.len(), 1);
        let embed = &messages[0].embeds[1];
        assert_eq!(embed.title, "🧙 Characters without a player (25)");
        assert_eq!(embed.description.lines().count(), 21);
        assert!(embed.description.ends_with("…and 5 more"));
        assert_eq!(embed.color, COLOR_WARNING);
        assert_eq!(messages[0].issue_ids.len(), 25);
    }

    #[test]
    fn control_characters_newlines_and_links_in_names_cannot_reach_officers() {
        let mut hostile = issue(1, IssueType::OrphanDiscord, "x");
        hostile.discord_username = Some("evil".into());
        hostile.discord_display_name =
            Some("\u{1b}[2J\u{7}Boss\nFAKE LINE https://evil.example/login".into());
        let text = render_text(std::slice::from_ref(&hostile), false);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        let issue_lines: Vec<&str> = text.lines().filter(|l| l.contains("Boss")).collect();
        assert_eq!(issue_lines.len(), 1, "{text}");
        assert!(issue_lines[0].contains("FAKE LINE"), "one line: {text}");
        assert!(!text.contains("\n  FAKE"), "{text}");

        let messages = render_messages(&[hostile], false);
        let description = &messages[0].embeds[1].description;
        assert_eq!(description.lines().count(), 1, "{description}");
        assert!(
            !description.chars().any(char::is_control),
            "{description:?}"
        );
        assert!(!description.contains("https://"), "{description}");
        assert!(description.contains("evil.example"), "{description}");
    }

    #[test]
    fn names_with_markdown_are_escaped_in_embeds_but_not_in_text() {
        let issues = vec![issue(1, IssueType::OrphanWow, "x_Slayer_x")];
        let messages = render_messages(&issues, false);
        assert!(messages[0].embeds[1].description.contains(r"x\_Slayer\_x"));
        assert!(render_text(&issues, false).contains("x_Slayer_x-area-52 — something is off"));
    }

    #[test]
    fn names_inside_the_reason_are_escaped_in_embeds_too() {
        // A claim conflict's reason names the claimant, the BattleTag and the other player.
        let mut conflict = issue(1, IssueType::ClaimConflict, "Eluned");
        conflict.discord_username = Some("gwen".into());
        conflict.reason =
            Some("claimed by **gwen** (Battle.net Gwen#3003) but linked by hand to `Frank`".into());
        let messages = render_messages(std::slice::from_ref(&conflict), false);
        let description = &messages[0].embeds[1].description;
        assert!(
            description.contains(r"claimed by \*\*gwen\*\* (Battle.net Gwen\#3003)"),
            "{description}"
        );
        assert!(description.contains(r"to \`Frank\`"), "{description}");
        assert!(render_text(&[conflict], false).contains("claimed by **gwen**"));
    }

    #[test]
    fn a_gone_row_falls_back_to_the_stored_summary() {
        let mut gone = issue(1, IssueType::OrphanWow, "Gone");
        gone.character_name = None;
        gone.realm_slug = None;
        assert!(render_text(&[gone], false).contains("• Gone: summary"));
    }

    #[test]
    fn truncation_respects_the_limit_and_marks_the_cut() {
        let long = "é".repeat(300);
        let cut = truncate(&long, 256);
        assert_eq!(discord_len(&cut), 256);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short", 256), "short");
    }

    #[test]
    fn long_lines_and_many_types_still_fit_discord() {
        let mut issues = Vec::new();
        let mut id = 0;
        for t in IssueType::ALL {
            for _ in 0..40 {
                id += 1;
                let mut i = issue(id, t, &"W".repeat(120));
                i.reason = Some("😀".repeat(200));
                issues.push(i);
            }
        }
        let messages = render_messages(&issues, true);
        assert_within_limits(&messages);
        let carried: usize = messages.iter().map(|m| m.issue_ids.len()).sum();
        assert_eq!(carried, issues.len());
        assert!(messages.len() > 1);
    }

    #[test]
    fn a_sync_summary_is_sent_only_when_something_notable_happened() {
        let cases = [
            (
                json!({"characters_found": 1000, "characters_new": 0}),
                false,
            ),
            (json!({"characters_found": 1000, "characters_new": 2}), true),
            (json!({"members_removed": 1}), true),
            (json!({"status": "partial"}), true),
            (json!({"status": "success", "unchanged": 5}), false),
            (json!(null), false),
        ];
        for (stats, notable) in cases {
            assert_eq!(
                render_sync_summary("blizzard", &stats, 1.5).is_some(),
                notable,
                "{stats}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn every_rendering_respects_discord_limits(
            counts in proptest::collection::vec(0usize..60, 7),
            name_len in 1usize..300,
        ) {
            let mut issues = Vec::new();
            let mut id = 0;
            for (t, n) in IssueType::ALL.into_iter().zip(counts) {
                for _ in 0..n {
                    id += 1;
                    issues.push(issue(id, t, &"ä".repeat(name_len)));
                }
            }
            let messages = render_messages(&issues, false);
            assert_within_limits(&messages);
            let carried: usize = messages.iter().map(|m| m.issue_ids.len()).sum();
            proptest::prop_assert_eq!(carried, issues.len());
        }
    }
}
