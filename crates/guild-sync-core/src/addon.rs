//! The PATTSync export model: what the in-game addon exports (SPEC §4), read from either of its
//! two carriers — the SavedVariables file (`PATTSyncDB.lastExport`) or the companion's upload
//! JSON body — into one validated [`AddonExport`]; the upload body the companion sends; and the
//! pure decision of which `wow_characters` rows an export updates ([`plan_addon_sync`]).
//!
//! Both carriers are untrusted. Every text is cleaned where it is read ([`crate::text::clean`]:
//! no NUL or other control characters reach the database or a report). Every record is checked
//! here: a structurally broken one is refused with the path of the offending field
//! (`characters[3].level`), so nothing half-valid reaches the database; a malformed *optional*
//! field (last online, zone, achievement points) only informs, so it becomes an
//! [`AddonWarning`] naming the character and is ignored. No I/O happens here.
//!
//! `lastOnline` comes in two forms: unix seconds (this project's addon) and the original
//! PATTSync addon's text (`"Online"`, `"5h"`, `"3d 5h"`, `"2m 4d"`, `"1y 2m 3d"`), which is
//! relative to the export time and becomes an approximate timestamp ([`parse_relative_age`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::names::realm_key;
use crate::savedvars::{self, LuaTable, LuaValue, SavedVarsError};
use crate::text::clean;

/// The SavedVariables global the addon writes (its `.toc` declares it).
pub const SAVED_VARIABLE: &str = "PATTSyncDB";

/// Largest upload body accepted, in bytes. A 1,000-member guild uploads about 300 KB.
pub const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Most characters one export may carry (WoW guilds hold at most 1,000 members).
pub const MAX_CHARACTERS: usize = 5_000;

/// Longest name, realm, class, rank name or zone accepted, in characters.
pub const MAX_SHORT_TEXT: usize = 64;

/// Longest guild or officer note accepted, in characters (WoW itself caps notes at 31).
pub const MAX_NOTE: usize = 512;

/// Highest rank index a guild can have (WoW guilds have ranks 0 to 9).
pub const MAX_RANK_INDEX: i32 = 9;

/// Highest character level accepted (a sanity bound, well above the current cap).
pub const MAX_LEVEL: i32 = 200;

/// One guild member as the addon saw it. Serialized, it is one character of an [`UploadBody`]
/// (the wire names the rank index `rank`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonCharacter {
    /// The character name without the realm (the addon splits WoW's `Name-Realm`).
    pub name: String,
    /// The in-game realm name: no spaces or apostrophes ("BleedingHollow").
    pub realm: String,
    /// The localized class name ("Death Knight").
    pub class: Option<String>,
    /// The locale-independent class token ("DEATHKNIGHT"), when the addon sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_file: Option<String>,
    pub level: Option<i32>,
    /// The in-game rank index: 0 = Guild Leader.
    #[serde(rename = "rank")]
    pub rank_index: Option<i32>,
    pub rank_name: Option<String>,
    /// `Some("")` = the note is empty; `None` = not exported (the stored note is kept).
    pub guild_note: Option<String>,
    /// As `guild_note`. The addon leaves officer notes out when the exporting character cannot
    /// read them, so a non-officer's export never erases them.
    pub officer_note: Option<String>,
    pub is_online: bool,
    /// When the character was last online, unix seconds (approximate: WoW reports it in
    /// years/months/days/hours ago; the export time for members online). `None` when unknown.
    pub last_online: Option<i64>,
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achievement_points: Option<i32>,
}

/// One export of the guild roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonExport {
    /// When the addon made the export, unix seconds. Always present in a SavedVariables export;
    /// optional in an upload body (clients other than the companion may omit it).
    pub export_time: Option<i64>,
    pub addon_version: Option<String>,
    pub guild_name: Option<String>,
    /// Who exported ("Name-Realm" of the officer's character) or uploaded.
    pub uploaded_by: Option<String>,
    pub characters: Vec<AddonCharacter>,
    /// Malformed optional fields that were ignored, one per field, in record order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<AddonWarning>,
}

/// A malformed optional field of one character: reported, and the field ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonWarning {
    /// `Name-Realm` of the character.
    pub character: String,
    /// The field's path, e.g. `characters[3].last_online`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for AddonWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {}; the field is ignored",
            self.character, self.field, self.message
        )
    }
}

/// Seconds in the units of the original addon's `lastOnline` text. WoW reports months and years
/// as calendar-free counts, so 30 and 365 days are as exact as the source.
const HOUR: i64 = 3_600;
const DAY: i64 = 24 * HOUR;
const MONTH: i64 = 30 * DAY;
const YEAR: i64 = 365 * DAY;

/// Largest count accepted in one part of the `lastOnline` text: WoW is 20 years old, and a bound
/// keeps the arithmetic far from overflow.
const MAX_AGE_PART: i64 = 100_000;

/// How long ago the original addon's `lastOnline` text says a member was online, in seconds:
/// `"Online"` is 0, else space-separated parts `<count><unit>` with units `y`, `m` (months),
/// `d`, `h` — `"5h"`, `"3d 5h"`, `"2m 4d"`, `"1y 2m 3d"`. `None` when the text is not that form.
pub fn parse_relative_age(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("online") {
        return Some(0);
    }
    let mut total: i64 = 0;
    let mut parts = 0;
    for part in text.split_whitespace() {
        let unit_at = part.len().checked_sub(1)?;
        let (count, unit) = part.split_at(unit_at);
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let count: i64 = count.parse().ok().filter(|c| *c <= MAX_AGE_PART)?;
        let seconds = match unit {
            "y" | "Y" => YEAR,
            "m" | "M" => MONTH,
            "d" | "D" => DAY,
            "h" | "H" => HOUR,
            _ => return None,
        };
        total += count * seconds;
        parts += 1;
    }
    (parts > 0).then_some(total)
}

/// Why an export or upload body was refused. Each kind is its own variant so the upload
/// endpoint can answer it with its own status (the API maps them; the core knows no HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddonInputError {
    /// Not JSON at all (400).
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// Not a readable SavedVariables file (400). The parser's error is part of the message,
    /// not a separate source, so an error chain does not print it twice.
    #[error("malformed SavedVariables file: {0}")]
    MalformedLua(SavedVarsError),
    /// Larger than [`MAX_UPLOAD_BYTES`] (413).
    #[error("the upload is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// Well-formed but without a single character (422): applying it would teach nothing, and
    /// it usually means the addon ran before the roster loaded.
    #[error("the export has no characters")]
    Empty,
    /// Well-formed, but a field is missing or wrong (422). `field` is a path such as
    /// `characters[3].level` or `PATTSyncDB.lastExport.exportTime`.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl From<SavedVarsError> for AddonInputError {
    fn from(err: SavedVarsError) -> Self {
        AddonInputError::MalformedLua(err)
    }
}

impl AddonInputError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AddonInputError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl AddonExport {
    /// Read `PATTSyncDB.lastExport` from a SavedVariables file, parsed as data.
    pub fn from_saved_variables(input: &[u8]) -> Result<AddonExport, AddonInputError> {
        let sv = savedvars::parse(input)?;
        let root = match sv.get(SAVED_VARIABLE) {
            Some(LuaValue::Table(t)) => t,
            Some(other) => {
                return Err(AddonInputError::invalid(
                    SAVED_VARIABLE,
                    format!("expected a table, found {other}"),
                ));
            }
            None => {
                return Err(AddonInputError::invalid(
                    SAVED_VARIABLE,
                    "not in the file (is this PATTSync.lua?)",
                ));
            }
        };
        let path = format!("{SAVED_VARIABLE}.lastExport");
        let export = match root.get("lastExport") {
            Some(LuaValue::Table(t)) => t,
            Some(other) => {
                return Err(AddonInputError::invalid(
                    path,
                    format!("expected a table, found {other}"),
                ));
            }
            None => {
                return Err(AddonInputError::invalid(
                    path,
                    "missing: the addon has not exported yet (open the guild roster or type /pattsync force)",
                ));
            }
        };
        let lua = LuaFields {
            table: export,
            path: &path,
        };
        let export_time = lua
            .int("exportTime")?
            .ok_or_else(|| AddonInputError::invalid(format!("{path}.exportTime"), "missing"))?;
        let chars_path = format!("{path}.characters");
        let characters = match export.get("characters") {
            Some(LuaValue::Table(t)) => t,
            Some(other) => {
                return Err(AddonInputError::invalid(
                    chars_path,
                    format!("expected a table, found {other}"),
                ));
            }
            None => return Err(AddonInputError::Empty),
        };
        let sequence = characters.sequence();
        if sequence.len() > MAX_CHARACTERS {
            return Err(AddonInputError::invalid(
                chars_path,
                format!("{} characters; at most {MAX_CHARACTERS}", sequence.len()),
            ));
        }
        let mut records = Vec::with_capacity(sequence.len());
        for (index, value) in sequence {
            let record_path = format!("{chars_path}[{index}]");
            let LuaValue::Table(t) = value else {
                return Err(AddonInputError::invalid(
                    record_path,
                    format!("expected a table, found {value}"),
                ));
            };
            let f = LuaFields {
                table: t,
                path: &record_path,
            };
            records.push(read_record(&f, LUA_KEYS)?);
        }
        build_export(
            Some(export_time),
            export_time,
            lua.string("addonVersion")?,
            lua.string("guildName")?,
            lua.string("exportedBy")?,
            records,
        )
    }

    /// Read an upload body (the contract is on [`UploadBody`]) received now. Malformed JSON,
    /// invalid content and an empty export are distinct errors (see [`AddonInputError`]).
    pub fn from_upload_json(body: &[u8]) -> Result<AddonExport, AddonInputError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Self::from_upload_json_at(body, now)
    }

    /// [`AddonExport::from_upload_json`] for a body received at `received_at` (unix seconds):
    /// the text form of `last_online` counts back from `export_time`, or from `received_at`
    /// when the body has none (the original companion sends none).
    pub fn from_upload_json_at(
        body: &[u8],
        received_at: i64,
    ) -> Result<AddonExport, AddonInputError> {
        if body.len() > MAX_UPLOAD_BYTES {
            return Err(AddonInputError::TooLarge {
                size: body.len(),
                limit: MAX_UPLOAD_BYTES,
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(AddonInputError::MalformedJson {
                line: 1,
                column: 1,
                message: "the body is empty".into(),
            });
        }
        // Parsing to a Value first separates syntax (400) from content (422) and lets every
        // content error name its field, which typed deserialization would not.
        let root: Value =
            serde_json::from_slice(body).map_err(|e| AddonInputError::MalformedJson {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?;
        let Value::Object(root) = root else {
            return Err(AddonInputError::invalid("(body)", "expected a JSON object"));
        };
        let top = JsonFields {
            map: &root,
            path: "",
        };
        let characters = match root.get("characters") {
            None | Some(Value::Null) => return Err(AddonInputError::Empty),
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(AddonInputError::invalid("characters", "expected an array"));
            }
        };
        if characters.len() > MAX_CHARACTERS {
            return Err(AddonInputError::invalid(
                "characters",
                format!("{} characters; at most {MAX_CHARACTERS}", characters.len()),
            ));
        }
        let mut records = Vec::with_capacity(characters.len());
        for (index, item) in characters.iter().enumerate() {
            let path = format!("characters[{index}]");
            let Value::Object(map) = item else {
                return Err(AddonInputError::invalid(path, "expected an object"));
            };
            let f = JsonFields { map, path: &path };
            records.push(read_record(&f, JSON_KEYS)?);
        }
        let export_time = top.int("export_time")?;
        build_export(
            export_time,
            export_time.unwrap_or(received_at),
            top.string("addon_version")?,
            top.string("guild_name")?,
            top.string("uploaded_by")?,
            records,
        )
    }

    /// The upload body for this export (see [`UploadBody`] for the contract).
    pub fn to_upload_body(&self) -> UploadBody {
        UploadBody {
            characters: self.characters.clone(),
            addon_version: self.addon_version.clone(),
            uploaded_by: self.uploaded_by.clone(),
            guild_name: self.guild_name.clone(),
            export_time: self.export_time,
        }
    }
}

/// The upload body: `POST {api_url}/api/guild-sync/addon-upload` with header `X-API-Key`.
///
/// ```json
/// {"characters": [{"name", "realm", "class", "level", "rank", "rank_name", "guild_note",
///   "officer_note", "is_online", "last_online", "zone"}], "addon_version", "uploaded_by",
///  "export_time"}
/// ```
///
/// SPEC §4's body plus `export_time` (the export's `exportTime`, unix seconds; optional for
/// other clients), and per character the optional `class_file` and `achievement_points`.
/// `rank` is the in-game rank index (0 = Guild Leader); `last_online` is unix seconds, or the
/// original addon's text (`"Online"`, `"3d 5h"`, …) relative to `export_time` (see
/// [`parse_relative_age`]); this server always sends unix seconds.
/// The server answers `202 {"run_id", "export_time", "characters"}` on success; 400 for
/// malformed JSON, 401 for a wrong key, 409 for an export older than the last applied one
/// ([`StaleExport`]), 413 for a body over [`MAX_UPLOAD_BYTES`], 422 naming the field for
/// invalid content, always with `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadBody {
    /// Serialized as the contract above says (see [`AddonCharacter`]).
    pub characters: Vec<AddonCharacter>,
    pub addon_version: Option<String>,
    pub uploaded_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_name: Option<String>,
    pub export_time: Option<i64>,
}

/// The upload endpoint's path under the API base URL (the server routes it, the companion
/// calls it).
pub const UPLOAD_PATH: &str = "/api/guild-sync/addon-upload";

/// The upload status endpoint's path under the API base URL; the companion's `setup` also uses
/// it to check a key.
pub const UPLOAD_STATUS_PATH: &str = "/api/guild-sync/addon-upload/status";

/// The header carrying the companion's key.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// The upload endpoint's `202` answer, as the server sends it and the companion reads it (one
/// type, so neither side can change the contract alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAccepted {
    /// The `sync_log` id of the addon run the upload started.
    pub run_id: i64,
    /// The accepted export's `export_time` (unix seconds), when the body carried one.
    pub export_time: Option<i64>,
    /// Characters in the accepted export.
    pub characters: usize,
    /// The earlier upload, still waiting for its turn, that this one replaced: only the newest
    /// export is applied, so that one's run ends `skipped` without applying it. Absent (not
    /// `null`) when none was, and optional to read, as servers before it never sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_run_id: Option<i64>,
}

/// A record as read, before validation.
struct RawCharacter {
    path: String,
    name: Option<String>,
    realm: Option<String>,
    class: Option<String>,
    class_file: Option<String>,
    level: Option<i64>,
    rank_index: Option<i64>,
    rank_name: Option<String>,
    guild_note: Option<String>,
    officer_note: Option<String>,
    is_online: Option<bool>,
    // Optional fields: an error here becomes a warning, not a refusal.
    last_online: Result<Option<RawLastOnline>, AddonInputError>,
    zone: Result<Option<String>, AddonInputError>,
    achievement_points: Result<Option<i64>, AddonInputError>,
}

/// `lastOnline` as read: unix seconds, or the original addon's text.
enum RawLastOnline {
    Unix(i64),
    Text(String),
}

/// `reference` is when the export was made (or received, when it does not say): the text form
/// of `lastOnline` counts back from it.
fn build_export(
    export_time: Option<i64>,
    reference: i64,
    addon_version: Option<String>,
    guild_name: Option<String>,
    uploaded_by: Option<String>,
    records: Vec<RawCharacter>,
) -> Result<AddonExport, AddonInputError> {
    if records.is_empty() {
        return Err(AddonInputError::Empty);
    }
    if let Some(t) = export_time
        && t < 0
    {
        return Err(AddonInputError::invalid("export_time", "negative"));
    }
    let mut seen: HashMap<(String, String), String> = HashMap::with_capacity(records.len());
    let mut characters = Vec::with_capacity(records.len());
    let mut warnings = Vec::new();
    for raw in records {
        let character = validate_character(raw.path.clone(), raw, reference, &mut warnings)?;
        let key = (character.name.to_lowercase(), realm_key(&character.realm));
        let path_of_this = format!("{}-{}", character.name, character.realm);
        if let Some(first) = seen.insert(key, path_of_this.clone()) {
            return Err(AddonInputError::invalid(
                "characters",
                format!("{first} appears twice"),
            ));
        }
        characters.push(character);
    }
    Ok(AddonExport {
        export_time,
        addon_version: short_text("addon_version", addon_version)?,
        guild_name: short_text("guild_name", guild_name)?,
        uploaded_by: short_text("uploaded_by", uploaded_by)?,
        characters,
        warnings,
    })
}

fn validate_character(
    path: String,
    raw: RawCharacter,
    reference: i64,
    warnings: &mut Vec<AddonWarning>,
) -> Result<AddonCharacter, AddonInputError> {
    let field = |name: &str| format!("{path}.{name}");
    let name = raw
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AddonInputError::invalid(field("name"), "missing or empty"))?;
    let mut realm = raw.realm.map(|r| r.trim().to_owned()).unwrap_or_default();
    // WoW's roster names are "Name-Realm"; accept that form when no separate realm came.
    let name = match name.split_once('-') {
        Some((n, r)) if realm.is_empty() => {
            realm = r.to_owned();
            n.to_owned()
        }
        Some((n, r)) if realm_key(r) == realm_key(&realm) => n.to_owned(),
        Some(_) => {
            return Err(AddonInputError::invalid(
                field("name"),
                format!("`{name}` names a different realm than `{realm}`"),
            ));
        }
        None => name,
    };
    if name.is_empty() || name.chars().count() > MAX_SHORT_TEXT {
        return Err(AddonInputError::invalid(
            field("name"),
            format!("must be 1 to {MAX_SHORT_TEXT} characters"),
        ));
    }
    if realm_key(&realm).is_empty() || realm.chars().count() > MAX_SHORT_TEXT {
        return Err(AddonInputError::invalid(
            field("realm"),
            "missing, empty or not a realm name",
        ));
    }
    let level = match raw.level {
        None | Some(0) => None,
        Some(l) if (1..=i64::from(MAX_LEVEL)).contains(&l) => Some(l as i32),
        Some(l) => {
            return Err(AddonInputError::invalid(
                field("level"),
                format!("{l} is not a level (1 to {MAX_LEVEL})"),
            ));
        }
    };
    let rank_index = match raw.rank_index {
        None => None,
        Some(r) if (0..=i64::from(MAX_RANK_INDEX)).contains(&r) => Some(r as i32),
        Some(r) => {
            return Err(AddonInputError::invalid(
                field("rank"),
                format!("{r} is not a rank index (0 to {MAX_RANK_INDEX})"),
            ));
        }
    };
    // Optional fields only inform (nothing is matched on them): a malformed one is reported
    // against the character and dropped, so one odd record cannot cost the guild its export.
    let label = format!("{name}-{realm}");
    let mut optional = OptionalFields {
        character: &label,
        warnings,
    };
    let achievement_points = optional.take(raw.achievement_points.and_then(|p| {
        match p {
            None => Ok(None),
            Some(p) => i32::try_from(p)
                .ok()
                .filter(|p| *p >= 0)
                .map(Some)
                .ok_or_else(|| {
                    AddonInputError::invalid(
                        field("achievement_points"),
                        format!("{p} is out of range"),
                    )
                }),
        }
    }));
    let last_online = optional.take(raw.last_online.and_then(|t| match t {
        None | Some(RawLastOnline::Unix(0)) => Ok(None),
        Some(RawLastOnline::Unix(t)) if t > 0 => Ok(Some(t)),
        Some(RawLastOnline::Unix(t)) => Err(AddonInputError::invalid(
            field("last_online"),
            format!("{t} is negative"),
        )),
        Some(RawLastOnline::Text(text)) => match parse_relative_age(&text) {
            Some(age) => Ok(Some((reference - age).max(1))),
            None => Err(AddonInputError::invalid(
                field("last_online"),
                format!(
                    "`{text}` is neither unix seconds nor a time like \"Online\", \"3d 5h\" or \"1y 2m 3d\""
                ),
            )),
        },
    }));
    let zone = optional.take(raw.zone.and_then(|zone| short_text(&field("zone"), zone)));
    Ok(AddonCharacter {
        class: short_text(&field("class"), raw.class)?,
        class_file: short_text(&field("class_file"), raw.class_file)?,
        rank_name: short_text(&field("rank_name"), raw.rank_name)?,
        zone,
        guild_note: note(&field("guild_note"), raw.guild_note)?,
        officer_note: note(&field("officer_note"), raw.officer_note)?,
        name,
        realm,
        level,
        rank_index,
        is_online: raw.is_online.unwrap_or(false),
        last_online,
        achievement_points,
    })
}

/// Where a malformed optional field becomes a warning naming its character.
struct OptionalFields<'a> {
    character: &'a str,
    warnings: &'a mut Vec<AddonWarning>,
}

impl OptionalFields<'_> {
    fn take<T>(&mut self, result: Result<Option<T>, AddonInputError>) -> Option<T> {
        match result {
            Ok(value) => value,
            Err(err) => {
                let (field, message) = match err {
                    AddonInputError::Invalid { field, message } => (field, message),
                    other => (String::new(), other.to_string()),
                };
                self.warnings.push(AddonWarning {
                    character: self.character.to_owned(),
                    field,
                    message,
                });
                None
            }
        }
    }
}

/// Trimmed; empty becomes `None`; longer than [`MAX_SHORT_TEXT`] is refused.
fn short_text(field: &str, value: Option<String>) -> Result<Option<String>, AddonInputError> {
    bounded(field, value, MAX_SHORT_TEXT)
}

/// Trimmed, but an empty note stays `Some("")`: it means "the note is empty" (clear it), while
/// `None` means "not exported" (keep what is stored) — e.g. officer notes exported by a
/// character that cannot read them.
fn note(field: &str, value: Option<String>) -> Result<Option<String>, AddonInputError> {
    match value {
        Some(v) if v.trim().is_empty() => Ok(Some(String::new())),
        other => bounded(field, other, MAX_NOTE),
    }
}

fn bounded(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, AddonInputError> {
    let Some(value) = value else { return Ok(None) };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > max {
        return Err(AddonInputError::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

/// Typed field access on one record of either input form (Lua table or JSON object), with
/// the record's path in every error; each form has its own type rules (see the impls).
trait Fields {
    fn path(&self) -> &str;
    fn string(&self, key: &str) -> Result<Option<String>, AddonInputError>;
    fn int(&self, key: &str) -> Result<Option<i64>, AddonInputError>;
    fn bool(&self, key: &str) -> Result<Option<bool>, AddonInputError>;
    fn last_online(&self, key: &str) -> Result<Option<RawLastOnline>, AddonInputError>;
}

/// The key names of a character record in one input form; the two forms carry the same
/// fields under different names (the addon's camelCase, the upload body's snake_case).
struct RecordKeys {
    class_file: &'static str,
    rank_name: &'static str,
    guild_note: &'static str,
    officer_note: &'static str,
    is_online: &'static str,
    last_online: &'static str,
    achievement_points: &'static str,
}

/// Keys of a record in the addon's SavedVariables.
const LUA_KEYS: RecordKeys = RecordKeys {
    class_file: "classFile",
    rank_name: "rankName",
    guild_note: "note",
    officer_note: "officerNote",
    is_online: "isOnline",
    last_online: "lastOnline",
    achievement_points: "achievementPoints",
};

/// Keys of a record in an upload body (see [`UploadBody`]).
const JSON_KEYS: RecordKeys = RecordKeys {
    class_file: "class_file",
    rank_name: "rank_name",
    guild_note: "guild_note",
    officer_note: "officer_note",
    is_online: "is_online",
    last_online: "last_online",
    achievement_points: "achievement_points",
};

/// Read one character record. `name`, `realm`, `class`, `level`, `rank` and `zone` are named
/// alike in both forms; a wrongly typed required field refuses the input, an optional one is
/// kept as its error (it becomes a warning in [`build_export`]).
fn read_record(f: &impl Fields, keys: RecordKeys) -> Result<RawCharacter, AddonInputError> {
    Ok(RawCharacter {
        path: f.path().to_owned(),
        name: f.string("name")?,
        realm: f.string("realm")?,
        class: f.string("class")?,
        class_file: f.string(keys.class_file)?,
        level: f.int("level")?,
        rank_index: f.int("rank")?,
        rank_name: f.string(keys.rank_name)?,
        guild_note: f.string(keys.guild_note)?,
        officer_note: f.string(keys.officer_note)?,
        is_online: f.bool(keys.is_online)?,
        last_online: f.last_online(keys.last_online),
        zone: f.string("zone"),
        achievement_points: f.int(keys.achievement_points),
    })
}

/// Typed field access on a Lua table, with the path in every error.
struct LuaFields<'a> {
    table: &'a LuaTable,
    path: &'a str,
}

impl LuaFields<'_> {
    fn wrong(&self, key: &str, expected: &str, found: &LuaValue) -> AddonInputError {
        AddonInputError::invalid(
            format!("{}.{key}", self.path),
            format!("expected {expected}, found {found}"),
        )
    }
}

impl Fields for LuaFields<'_> {
    fn path(&self) -> &str {
        self.path
    }

    fn string(&self, key: &str) -> Result<Option<String>, AddonInputError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(LuaValue::String(s)) => Ok(Some(clean(s))),
            // Lua coerces numbers to strings; a realm or name never is one, but a zone could be.
            Some(LuaValue::Integer(i)) => Ok(Some(i.to_string())),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, AddonInputError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(LuaValue::Integer(i)) => Ok(Some(*i)),
            Some(LuaValue::Number(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                Ok(Some(*n as i64))
            }
            Some(other) => Err(self.wrong(key, "an integer", other)),
        }
    }

    /// `lastOnline`: unix seconds or the original addon's text.
    fn last_online(&self, key: &str) -> Result<Option<RawLastOnline>, AddonInputError> {
        match self.table.get(key) {
            Some(LuaValue::String(s)) => Ok(Some(RawLastOnline::Text(clean(s)))),
            _ => Ok(self.int(key)?.map(RawLastOnline::Unix)),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, AddonInputError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(LuaValue::Boolean(b)) => Ok(Some(*b)),
            // Old addon versions wrote 1/0 for online.
            Some(LuaValue::Integer(i)) => Ok(Some(*i != 0)),
            Some(other) => Err(self.wrong(key, "a boolean", other)),
        }
    }
}

/// Typed field access on a JSON object, with the path in every error.
struct JsonFields<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl JsonFields<'_> {
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl Fields for JsonFields<'_> {
    fn path(&self) -> &str {
        self.path
    }

    fn string(&self, key: &str) -> Result<Option<String>, AddonInputError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(clean(s))),
            Some(_) => Err(AddonInputError::invalid(
                self.field(key),
                "expected a string",
            )),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, AddonInputError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .map(Some)
                .ok_or_else(|| AddonInputError::invalid(self.field(key), "expected an integer")),
            Some(_) => Err(AddonInputError::invalid(
                self.field(key),
                "expected an integer",
            )),
        }
    }

    /// `last_online`: unix seconds or the original companion's text.
    fn last_online(&self, key: &str) -> Result<Option<RawLastOnline>, AddonInputError> {
        match self.map.get(key) {
            Some(Value::String(s)) => Ok(Some(RawLastOnline::Text(clean(s)))),
            _ => Ok(self.int(key)?.map(RawLastOnline::Unix)),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, AddonInputError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(AddonInputError::invalid(
                self.field(key),
                "expected true or false",
            )),
        }
    }
}

/// A `wow_characters` row as the addon sync sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCharacter {
    pub id: i32,
    pub name: String,
    pub realm_slug: String,
    pub in_guild: bool,
}

/// A class the sync can resolve to (`guild_identity.classes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownClass {
    pub id: i32,
    pub name: String,
}

/// A guild rank with the in-game index it maps to (`common.guild_ranks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRank {
    pub id: i32,
    pub ingame_rank_index: Option<i32>,
}

/// What the addon sync writes to one matched character. `None` anywhere means "keep the
/// current value"; a note of `Some("")` clears the stored note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonUpdate {
    pub character_id: i32,
    pub guild_note: Option<String>,
    pub officer_note: Option<String>,
    pub class_id: Option<i32>,
    pub guild_rank_id: Option<i32>,
    pub level: Option<i32>,
}

/// The decision for one export: the updates, and what could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddonSyncPlan {
    /// Sorted by character id, one per matched character.
    pub updates: Vec<AddonUpdate>,
    /// `Name-Realm` of exported characters with no row (never created by the addon sync).
    pub unknown: Vec<String>,
    /// `Name-Realm (class)` of characters whose class is not in the reference table.
    pub unknown_class: Vec<String>,
    /// `Name-Realm (rank N)` of characters whose rank index no guild rank claims.
    pub unknown_rank: Vec<String>,
    /// `Name-Realm` of characters that match more than one row (two slugs with the same key);
    /// skipped rather than guessed.
    pub ambiguous: Vec<String>,
}

/// An export older than the last one applied: applying it would overwrite newer notes (and,
/// forged, newer ranks) with old ones. Refused unless the officer forces it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this export was made at {}, before the last applied export ({}); it would overwrite newer notes with older ones (export again in game, or force it)",
    show_time(*export_time),
    show_time(*last_applied)
)]
pub struct StaleExport {
    /// The refused export's `exportTime`, unix seconds.
    pub export_time: i64,
    /// The newest `exportTime` already applied, unix seconds.
    pub last_applied: i64,
}

fn show_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// Refuse an export older than the newest one applied. An export without an `exportTime`
/// cannot be dated and passes (it is as new as its arrival); an equal time is the same export
/// again and passes, so a retried upload is harmless.
pub fn check_not_stale(
    export_time: Option<i64>,
    last_applied: Option<i64>,
) -> Result<(), StaleExport> {
    match (export_time, last_applied) {
        (Some(export_time), Some(last_applied)) if export_time < last_applied => Err(StaleExport {
            export_time,
            last_applied,
        }),
        _ => Ok(()),
    }
}

/// Whether a Battle.net roster sync newer than the export has set the ranks, so the export's
/// ranks must not be applied: Battle.net is the source of truth for ranks, and an export only
/// reports what the game showed when it was made. `export_time` is the export's time, or its
/// arrival when it has none; both in unix seconds.
pub fn battle_net_ranks_are_newer(export_time: i64, last_battle_net_sync: Option<i64>) -> bool {
    last_battle_net_sync.is_some_and(|synced| synced > export_time)
}

impl AddonSyncPlan {
    /// Keep every stored rank (see [`battle_net_ranks_are_newer`]); returns how many updates
    /// carried a rank that is now not applied.
    pub fn keep_stored_ranks(&mut self) -> usize {
        let mut kept = 0;
        for update in &mut self.updates {
            if update.guild_rank_id.take().is_some() {
                kept += 1;
            }
        }
        kept
    }
}

/// The comparison key for a class name or class token: "Death Knight" and "DEATHKNIGHT" agree.
fn class_key(class: &str) -> String {
    realm_key(class)
}

/// Match every exported character to a row on lowercase name **and** realm key (never on name
/// alone), and resolve class and rank. Pure and deterministic whatever the input order.
pub fn plan_addon_sync(
    export: &AddonExport,
    characters: &[KnownCharacter],
    classes: &[KnownClass],
    ranks: &[KnownRank],
) -> AddonSyncPlan {
    let mut by_key: HashMap<(String, String), Vec<&KnownCharacter>> =
        HashMap::with_capacity(characters.len());
    for c in characters {
        by_key
            .entry((c.name.to_lowercase(), realm_key(&c.realm_slug)))
            .or_default()
            .push(c);
    }
    let class_by_key: HashMap<String, i32> =
        classes.iter().map(|c| (class_key(&c.name), c.id)).collect();
    let rank_by_index: HashMap<i32, i32> = ranks
        .iter()
        .filter_map(|r| r.ingame_rank_index.map(|i| (i, r.id)))
        .collect();

    let mut plan = AddonSyncPlan::default();
    for exported in &export.characters {
        let label = format!("{}-{}", exported.name, exported.realm);
        let key = (exported.name.to_lowercase(), realm_key(&exported.realm));
        let row = match by_key.get(&key).map(Vec::as_slice) {
            None | Some([]) => {
                plan.unknown.push(label);
                continue;
            }
            Some([one]) => *one,
            Some(many) => {
                // Two rows for one key can only differ in slug punctuation; the one in the
                // guild is the live one. If that does not settle it, do not guess.
                let live: Vec<_> = many.iter().filter(|c| c.in_guild).collect();
                if let [one] = live.as_slice() {
                    **one
                } else {
                    plan.ambiguous.push(label);
                    continue;
                }
            }
        };
        let class_id = match (&exported.class, &exported.class_file) {
            (None, None) => None,
            (class, file) => {
                let found = class
                    .iter()
                    .chain(file.iter())
                    .find_map(|c| class_by_key.get(&class_key(c)).copied());
                if found.is_none() {
                    let shown = class.as_deref().or(file.as_deref()).unwrap_or_default();
                    plan.unknown_class.push(format!("{label} ({shown})"));
                }
                found
            }
        };
        let guild_rank_id = exported.rank_index.and_then(|index| {
            let found = rank_by_index.get(&index).copied();
            if found.is_none() {
                plan.unknown_rank.push(format!("{label} (rank {index})"));
            }
            found
        });
        plan.updates.push(AddonUpdate {
            character_id: row.id,
            guild_note: exported.guild_note.clone(),
            officer_note: exported.officer_note.clone(),
            class_id,
            guild_rank_id,
            level: exported.level,
        });
    }
    plan.updates.sort_by_key(|u| u.character_id);
    // Two exported records can only reach one row through two slugs with the same key, which
    // the duplicate check on the export already refuses; keep the first regardless.
    plan.updates.dedup_by_key(|u| u.character_id);
    plan.unknown.sort();
    plan.unknown_class.sort();
    plan.unknown_rank.sort();
    plan.ambiguous.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: serde_json::Value) -> Result<AddonExport, AddonInputError> {
        AddonExport::from_upload_json(value.to_string().as_bytes())
    }

    fn one_character() -> serde_json::Value {
        serde_json::json!({
            "characters": [{"name": "Trogmoon", "realm": "Senjin", "class": "Druid", "level": 80,
                "rank": 1, "rank_name": "Officer", "guild_note": "Discord: trog",
                "officer_note": " main ", "is_online": true, "last_online": null, "zone": "Dornogal"}],
            "addon_version": "1.0.0", "uploaded_by": "Trogmoon-Senjin", "export_time": 1700000000
        })
    }

    #[test]
    fn an_upload_body_becomes_validated_characters() {
        let export = json(one_character()).expect("valid");
        assert_eq!(export.export_time, Some(1_700_000_000));
        assert_eq!(export.uploaded_by.as_deref(), Some("Trogmoon-Senjin"));
        let c = &export.characters[0];
        assert_eq!(c.name, "Trogmoon");
        assert_eq!(c.realm, "Senjin");
        assert_eq!(c.rank_index, Some(1));
        assert_eq!(c.officer_note.as_deref(), Some("main"));
        assert!(c.is_online);
    }

    #[test]
    fn name_realm_in_the_name_field_is_split() {
        let export = json(serde_json::json!({"characters": [{"name": "Trog-BleedingHollow"}]}))
            .expect("valid");
        assert_eq!(export.characters[0].name, "Trog");
        assert_eq!(export.characters[0].realm, "BleedingHollow");
        let err =
            json(serde_json::json!({"characters": [{"name": "Trog-Area52", "realm": "Senjin"}]}))
                .expect_err("conflict");
        assert!(err.to_string().contains("different realm"), "{err}");
    }

    #[test]
    fn the_upload_body_round_trips_through_the_parser() {
        let export = json(one_character()).expect("valid");
        let body = serde_json::to_vec(&export.to_upload_body()).expect("serializes");
        assert_eq!(AddonExport::from_upload_json(&body).expect("valid"), export);
    }

    /// `AddonCharacter` is the upload's character record: its keys are the contract's.
    #[test]
    fn a_character_serializes_with_the_upload_contracts_keys() {
        let export = json(
            serde_json::json!({"characters": [{"name": "Trog", "realm": "Senjin",
            "rank": 2}]}),
        )
        .expect("valid");
        let body = serde_json::to_value(export.to_upload_body()).expect("serializes");
        let mut keys: Vec<&str> = body["characters"][0]
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "class",
                "guild_note",
                "is_online",
                "last_online",
                "level",
                "name",
                "officer_note",
                "rank",
                "rank_name",
                "realm",
                "zone"
            ]
        );
        assert_eq!(body["characters"][0]["rank"], 2);
    }

    #[test]
    fn a_savedvariables_export_is_read_into_characters() {
        let src = r#"
PATTSyncDB = {
	["lastExportTime"] = 1700000000,
	["lastExport"] = {
		["exportTime"] = 1700000000,
		["addonVersion"] = "1.0.0",
		["guildName"] = "PATT",
		["exportedBy"] = "Trog-Senjin",
		["characters"] = {
			{
				["name"] = "Trog",
				["realm"] = "Senjin",
				["class"] = "Death Knight",
				["classFile"] = "DEATHKNIGHT",
				["level"] = 80,
				["rank"] = 0,
				["note"] = "Discord: \"trog\"",
				["officerNote"] = "",
				["isOnline"] = false,
				["lastOnline"] = 1699990000,
			}, -- [1]
		},
	},
}
"#;
        let export = AddonExport::from_saved_variables(src.as_bytes()).expect("valid");
        assert_eq!(export.export_time, Some(1_700_000_000));
        assert_eq!(export.uploaded_by.as_deref(), Some("Trog-Senjin"));
        let c = &export.characters[0];
        assert_eq!(c.guild_note.as_deref(), Some("Discord: \"trog\""));
        assert_eq!(c.officer_note.as_deref(), Some(""));
        assert_eq!(c.class_file.as_deref(), Some("DEATHKNIGHT"));
        assert_eq!(c.last_online, Some(1_699_990_000));
    }

    #[test]
    fn savedvariables_errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("Other = {}", "PATTSyncDB: not in the file"),
            ("PATTSyncDB = 5", "PATTSyncDB: expected a table"),
            ("PATTSyncDB = {}", "has not exported yet"),
            (
                "PATTSyncDB = { lastExport = { characters = {} } }",
                "exportTime: missing",
            ),
            (
                "PATTSyncDB = { lastExport = { exportTime = 1, characters = {} } }",
                "no characters",
            ),
            (
                "PATTSyncDB = { lastExport = { exportTime = 1, characters = { { name = 'A', realm = 'B', level = 'x' } } } }",
                "PATTSyncDB.lastExport.characters[1].level: expected an integer, found a string",
            ),
            (
                "PATTSyncDB = { lastExport = { exportTime = 1, characters = { 5 } } }",
                "characters[1]: expected a table",
            ),
            ("PATTSyncDB = {", "malformed SavedVariables file: line 1"),
        ];
        for (src, needle) in cases {
            let err = AddonExport::from_saved_variables(src.as_bytes()).expect_err(src);
            assert!(err.to_string().contains(needle), "{src}: {err}");
        }
    }

    #[test]
    fn an_export_older_than_the_last_applied_one_is_stale() {
        assert_eq!(check_not_stale(Some(10), None), Ok(()));
        assert_eq!(check_not_stale(None, Some(10)), Ok(()));
        assert_eq!(check_not_stale(Some(10), Some(10)), Ok(()));
        assert_eq!(check_not_stale(Some(11), Some(10)), Ok(()));
        let day = 86_400;
        let err = check_not_stale(Some(1_790_000_000 - 70 * day), Some(1_790_000_000))
            .expect_err("stale");
        let shown = err.to_string();
        assert!(shown.contains("2026-"), "{shown}");
        assert!(shown.contains("before the last applied export"), "{shown}");
    }

    #[test]
    fn ranks_from_an_export_older_than_the_battle_net_sync_are_kept_out() {
        assert!(!battle_net_ranks_are_newer(100, None));
        assert!(!battle_net_ranks_are_newer(100, Some(100)));
        assert!(!battle_net_ranks_are_newer(100, Some(99)));
        assert!(battle_net_ranks_are_newer(100, Some(101)));
        let update = |id, rank| AddonUpdate {
            character_id: id,
            guild_note: Some("n".into()),
            officer_note: None,
            class_id: None,
            guild_rank_id: rank,
            level: None,
        };
        let mut plan = AddonSyncPlan {
            updates: vec![update(1, Some(4)), update(2, None), update(3, Some(4))],
            ..AddonSyncPlan::default()
        };
        assert_eq!(plan.keep_stored_ranks(), 2);
        assert!(plan.updates.iter().all(|u| u.guild_rank_id.is_none()));
        assert!(
            plan.updates
                .iter()
                .all(|u| u.guild_note.as_deref() == Some("n"))
        );
    }

    const DAY: i64 = 86_400;

    /// The original PATTSync addon's SavedVariables file, as guilds run it today.
    const ORIGINAL_EXPORT: &[u8] = include_bytes!("../tests/data/original-addon-export.lua");
    /// The original companion's upload body (no `export_time`; `last_online` as text).
    const ORIGINAL_UPLOAD: &[u8] = include_bytes!("../tests/data/original-companion-upload.json");

    #[test]
    fn relative_ages_in_the_original_addons_form_are_read() {
        let cases: &[(&str, Option<i64>)] = &[
            ("Online", Some(0)),
            ("online", Some(0)),
            ("5h", Some(5 * 3_600)),
            ("3d 5h", Some(3 * DAY + 5 * 3_600)),
            ("0d 2h", Some(2 * 3_600)),
            ("2m 4d", Some(64 * DAY)),
            ("1y 2m 3d", Some(365 * DAY + 63 * DAY)),
            ("2y 0m 1d", Some(731 * DAY)),
            ("", None),
            ("yesterday", None),
            ("3x", None),
            ("d", None),
            ("-3d", None),
            ("99999999999999999999y", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_relative_age(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn the_original_addons_savedvariables_export_is_accepted_as_it_is() {
        let export = AddonExport::from_saved_variables(ORIGINAL_EXPORT).expect("accepted");
        let t = 1_796_083_200;
        assert_eq!(export.export_time, Some(t));
        assert_eq!(export.characters.len(), 24);
        assert!(export.warnings.is_empty(), "{:?}", export.warnings);
        let by_name = |n: &str| {
            export
                .characters
                .iter()
                .find(|c| c.name == n)
                .expect("exported")
        };
        assert_eq!(by_name("Ragwyn").last_online, Some(t - 428 * DAY));
        assert_eq!(by_name("Kazor").last_online, Some(t - 64 * DAY));
        assert_eq!(by_name("Tonamine").last_online, Some(t - 5 * 3_600));
        assert_eq!(by_name("Tewyn").last_online, Some(t - 3 * DAY - 5 * 3_600));
        assert_eq!(by_name("Risnasha").last_online, Some(t));
        assert!(by_name("Risnasha").is_online);
        assert_eq!(by_name("Kazor").realm, "Sen'jin");
        assert_eq!(by_name("Ragwyn").achievement_points, Some(26_748));
    }

    #[test]
    fn the_original_companions_upload_is_accepted_relative_to_its_arrival() {
        let received = 1_796_100_000;
        let export = AddonExport::from_upload_json_at(ORIGINAL_UPLOAD, received).expect("accepted");
        assert_eq!(export.export_time, None);
        assert_eq!(export.characters.len(), 24);
        assert!(export.warnings.is_empty(), "{:?}", export.warnings);
        let ragwyn = &export.characters[0];
        assert_eq!(ragwyn.name, "Ragwyn");
        assert_eq!(ragwyn.last_online, Some(received - 428 * DAY));
        assert_eq!(export.uploaded_by.as_deref(), Some("companion_app"));
    }

    #[test]
    fn a_malformed_optional_field_is_a_warning_naming_the_character_and_is_ignored() {
        let src = br#"PATTSyncDB = { lastExport = { exportTime = 1000000, characters = {
            { name = "Trog", realm = "Senjin", level = 80, lastOnline = "last tuesday",
              zone = { }, achievementPoints = "lots", note = "kept" },
            { name = "Zoe", realm = "Senjin", lastOnline = -5, achievementPoints = -1 },
            { name = "Ok", realm = "Senjin", lastOnline = "1d", zone = "Dornogal" },
        } } }"#;
        let export = AddonExport::from_saved_variables(src).expect("accepted");
        assert_eq!(export.characters.len(), 3);
        let trog = &export.characters[0];
        assert_eq!((trog.last_online, trog.zone.as_deref()), (None, None));
        assert_eq!(trog.achievement_points, None);
        assert_eq!(trog.guild_note.as_deref(), Some("kept"));
        assert_eq!(trog.level, Some(80));
        assert_eq!(export.characters[2].last_online, Some(1_000_000 - DAY));
        let shown: Vec<String> = export.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 5, "{shown:#?}");
        for needle in [
            "Trog-Senjin: PATTSyncDB.lastExport.characters[1].last_online: `last tuesday` is neither",
            "Trog-Senjin: PATTSyncDB.lastExport.characters[1].zone: expected a string",
            "Trog-Senjin: PATTSyncDB.lastExport.characters[1].achievementPoints: expected an integer",
            "Zoe-Senjin: PATTSyncDB.lastExport.characters[2].last_online: -5 is negative",
            "Zoe-Senjin: PATTSyncDB.lastExport.characters[2].achievement_points: -1 is out of range",
        ] {
            assert!(
                shown.iter().any(|w| w.contains(needle)),
                "{needle} not in {shown:#?}"
            );
        }
        // The same in an upload body.
        let body = br#"{"characters": [{"name": "Trog", "realm": "Senjin", "last_online": "soon",
            "zone": 7, "achievement_points": 1.5}], "export_time": 1000000}"#;
        let export = AddonExport::from_upload_json(body).expect("accepted");
        assert_eq!(export.warnings.len(), 3, "{:?}", export.warnings);
        assert!(export.warnings.iter().all(|w| w.character == "Trog-Senjin"));
    }

    #[test]
    fn nul_and_control_characters_are_dropped_where_text_is_read() {
        let body = "{\"characters\": [{\"name\": \"Tr\\u0000og\", \"realm\": \"Sen\\u0007jin\",
            \"guild_note\": \"Discord: tr\\u0000og\\u001b[31m\", \"officer_note\": \"a\\nb\\tc\"}],
            \"uploaded_by\": \"x\\u0000y\"}";
        let export = AddonExport::from_upload_json(body.as_bytes()).expect("accepted");
        let c = &export.characters[0];
        assert_eq!((c.name.as_str(), c.realm.as_str()), ("Trog", "Senjin"));
        assert_eq!(c.guild_note.as_deref(), Some("Discord: trog[31m"));
        assert_eq!(c.officer_note.as_deref(), Some("a b\tc"));
        assert_eq!(export.uploaded_by.as_deref(), Some("xy"));
        let lua = b"PATTSyncDB = { lastExport = { exportTime = 5, characters = {
            { name = 'Tr\\0og', realm = 'Senjin', note = 'a\\0\\7b' } } } }";
        let export = AddonExport::from_saved_variables(lua).expect("accepted");
        assert_eq!(export.characters[0].name, "Trog");
        assert_eq!(export.characters[0].guild_note.as_deref(), Some("ab"));
    }

    fn character(name: &str, realm: &str) -> AddonCharacter {
        AddonCharacter {
            name: name.into(),
            realm: realm.into(),
            class: None,
            class_file: None,
            level: None,
            rank_index: None,
            rank_name: None,
            guild_note: None,
            officer_note: None,
            is_online: false,
            last_online: None,
            zone: None,
            achievement_points: None,
        }
    }

    fn known(id: i32, name: &str, realm_slug: &str) -> KnownCharacter {
        KnownCharacter {
            id,
            name: name.into(),
            realm_slug: realm_slug.into(),
            in_guild: true,
        }
    }

    #[test]
    fn the_plan_matches_on_name_and_realm_and_resolves_class_and_rank() {
        let mut trog = character("trog", "BleedingHollow");
        trog.class = Some("Druid".into());
        trog.rank_index = Some(0);
        trog.level = Some(80);
        trog.guild_note = Some("hi".into());
        let mut other = character("Trog", "Senjin");
        other.class_file = Some("DEATHKNIGHT".into());
        other.rank_index = Some(7);
        let mut odd = character("Odd", "Senjin");
        odd.class = Some("Bard".into());
        let export = AddonExport {
            export_time: Some(1),
            addon_version: None,
            guild_name: None,
            uploaded_by: None,
            warnings: Vec::new(),
            characters: vec![trog, other, odd, character("Ghost", "Senjin")],
        };
        let rows = [
            known(1, "Trog", "bleeding-hollow"),
            known(2, "Trog", "senjin"),
            known(3, "Odd", "sen-jin"),
            known(4, "Ghost", "area-52"),
        ];
        let classes = [
            KnownClass {
                id: 11,
                name: "Druid".into(),
            },
            KnownClass {
                id: 6,
                name: "Death Knight".into(),
            },
        ];
        let ranks = [KnownRank {
            id: 5,
            ingame_rank_index: Some(0),
        }];
        let plan = plan_addon_sync(&export, &rows, &classes, &ranks);
        assert_eq!(
            plan.updates,
            vec![
                AddonUpdate {
                    character_id: 1,
                    guild_note: Some("hi".into()),
                    officer_note: None,
                    class_id: Some(11),
                    guild_rank_id: Some(5),
                    level: Some(80),
                },
                AddonUpdate {
                    character_id: 2,
                    guild_note: None,
                    officer_note: None,
                    class_id: Some(6),
                    guild_rank_id: None,
                    level: None,
                },
                AddonUpdate {
                    character_id: 3,
                    guild_note: None,
                    officer_note: None,
                    class_id: None,
                    guild_rank_id: None,
                    level: None,
                },
            ]
        );
        assert_eq!(plan.unknown, vec!["Ghost-Senjin"]);
        assert_eq!(plan.unknown_class, vec!["Odd-Senjin (Bard)"]);
        assert_eq!(plan.unknown_rank, vec!["Trog-Senjin (rank 7)"]);
    }

    #[test]
    fn the_plan_does_not_depend_on_row_order() {
        let export = AddonExport {
            export_time: None,
            addon_version: None,
            guild_name: None,
            uploaded_by: None,
            warnings: Vec::new(),
            characters: vec![
                character("B", "Senjin"),
                character("A", "Senjin"),
                character("C", "X"),
            ],
        };
        let mut rows = vec![known(2, "b", "senjin"), known(1, "a", "senjin")];
        let first = plan_addon_sync(&export, &rows, &[], &[]);
        rows.reverse();
        assert_eq!(plan_addon_sync(&export, &rows, &[], &[]), first);
        assert_eq!(first.updates.len(), 2);
    }
}
