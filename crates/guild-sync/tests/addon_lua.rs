//! The PATTSync addon, run for real: `addon/PATTSync/PATTSync.lua` is loaded into Lua 5.1 (the
//! version WoW embeds) with the WoW API it calls stubbed (roster, timers, frames, events, slash
//! commands). Its `PATTSyncDB` is then written out the way WoW writes SavedVariables and read
//! back with the product's parser, so the addon and the parser are tested against each other.

use std::fmt::Write as _;

use guild_sync::addon_processor::parse_saved_variables;
use guild_sync_core::addon::AddonExport;
use mlua::{Lua, Table, Value};

const ADDON_SOURCE: &str = include_str!("../../../addon/PATTSync/PATTSync.lua");
const TOC: &str = include_str!("../../../addon/PATTSync/PATTSync.toc");

/// 2023-11-14 22:13:20 UTC.
const T0: i64 = 1_700_000_000;
const HOUR: i64 = 3600;

/// The WoW API the addon uses, stubbed in Lua. `FAKE` holds the game state the test controls.
const WOW_STUBS: &str = r##"
FAKE = { now = 0, members = {}, frames = {}, timers = {}, printed = {}, rosterRequests = 0,
         inGuild = true, canViewOfficerNote = true }

function time() return FAKE.now end
date = os.date
function print(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[#parts + 1] = tostring(select(i, ...)) end
  FAKE.printed[#FAKE.printed + 1] = table.concat(parts, " ")
end
function IsInGuild() return FAKE.inGuild end
function GetGuildInfo(unit) return "Pick All The Things", "Officer", 1 end
function UnitName(unit) return "Trogmoon", nil end
function GetNormalizedRealmName() return "Senjin" end
function GetRealmName() return "Sen'jin" end
function CanViewOfficerNote() return FAKE.canViewOfficerNote end
function GetNumGuildMembers() return #FAKE.members, 0, 0 end
function GetGuildRosterInfo(i)
  local m = FAKE.members[i]
  if not m then return nil end
  local officerNote = m.officerNote
  if not FAKE.canViewOfficerNote then officerNote = "" end
  return m.fullName, m.rankName, m.rankIndex, m.level, m.class, m.zone, m.note, officerNote,
    m.online, 0, m.classFile, m.achievementPoints, 0, false, false, 5, "Player-0000-0000"
end
function GetGuildRosterLastOnline(i)
  local m = FAKE.members[i]
  if not m or m.online then return nil end
  return m.years or 0, m.months or 0, m.days or 0, m.hours or 0
end
C_GuildInfo = { GuildRoster = function() FAKE.rosterRequests = FAKE.rosterRequests + 1 end }
C_Timer = { After = function(delay, fn) FAKE.timers[#FAKE.timers + 1] = { delay = delay, fn = fn } end }
SlashCmdList = {}

local function newFrame()
  local f = { events = {}, scripts = {}, hooks = {} }
  function f:RegisterEvent(e) self.events[e] = true end
  function f:UnregisterEvent(e) self.events[e] = nil end
  function f:SetScript(s, fn) self.scripts[s] = fn end
  function f:HookScript(s, fn)
    self.hooks[s] = self.hooks[s] or {}
    table.insert(self.hooks[s], fn)
  end
  return f
end
function CreateFrame(kind, name)
  local f = newFrame()
  FAKE.frames[#FAKE.frames + 1] = f
  return f
end

function FAKE.fire(event, ...)
  for _, f in ipairs(FAKE.frames) do
    if f.events[event] and f.scripts.OnEvent then f.scripts.OnEvent(f, event, ...) end
  end
end
-- Blizzard_Communities is load-on-demand: its frame appears, then ADDON_LOADED fires for it.
function FAKE.loadCommunitiesUI()
  CommunitiesFrame = newFrame()
  FAKE.fire("ADDON_LOADED", "Blizzard_Communities")
end
-- The player opens the roster (J): the frame shows; the server answers with a roster update.
function FAKE.openRoster()
  for _, fn in ipairs(CommunitiesFrame.hooks.OnShow or {}) do fn(CommunitiesFrame) end
  FAKE.fire("GUILD_ROSTER_UPDATE", false)
end
function FAKE.slash(message)
  local handler = SlashCmdList[string.upper(string.sub(SLASH_PATTSYNC1, 2))]
  handler(message, nil)
end
function FAKE.runTimers()
  local due = FAKE.timers
  FAKE.timers = {}
  for _, t in ipairs(due) do t.fn() end
end
function FAKE.lastPrinted() return FAKE.printed[#FAKE.printed] end
"##;

/// WoW with the addon loaded, its SavedVariables restored, the player logged in.
struct Game {
    lua: Lua,
}

impl Game {
    fn start(now: i64, saved: Option<&str>) -> Game {
        let lua = Lua::new();
        lua.load(WOW_STUBS)
            .set_name("wow_stubs")
            .exec()
            .expect("stubs load");
        lua.globals()
            .get::<Table>("FAKE")
            .expect("FAKE")
            .set("now", now)
            .expect("set now");
        if let Some(saved) = saved {
            // WoW runs the SavedVariables file before ADDON_LOADED; only the test may execute it.
            lua.load(saved)
                .set_name("PATTSync.lua (saved)")
                .exec()
                .expect("saved variables load");
        }
        lua.load(ADDON_SOURCE)
            .set_name("PATTSync.lua")
            .call::<()>(("PATTSync", lua.create_table().expect("table")))
            .expect("the addon loads");
        let game = Game { lua };
        game.run(r#"FAKE.fire("ADDON_LOADED", "PATTSync") FAKE.fire("PLAYER_LOGIN")"#);
        game
    }

    fn run(&self, code: &str) {
        self.lua
            .load(code)
            .exec()
            .unwrap_or_else(|e| panic!("{code}: {e}"));
    }

    fn fake(&self) -> Table {
        self.lua.globals().get("FAKE").expect("FAKE")
    }

    fn set_now(&self, now: i64) {
        self.fake().set("now", now).expect("set now");
    }

    fn add_member(&self, fields: &str) {
        self.run(&format!("table.insert(FAKE.members, {{ {fields} }})"));
    }

    fn roster_requests(&self) -> i64 {
        self.fake().get("rosterRequests").expect("rosterRequests")
    }

    fn last_printed(&self) -> String {
        self.lua
            .load("return FAKE.lastPrinted()")
            .eval::<Option<String>>()
            .expect("printed")
            .unwrap_or_default()
    }

    fn total_exports(&self) -> i64 {
        self.lua
            .load("return PATTSyncDB.totalExports")
            .eval()
            .expect("totalExports")
    }

    /// `PATTSyncDB` written the way WoW writes SavedVariables on logout.
    fn saved_variables(&self) -> String {
        let mut out = String::new();
        let value: Value = self.lua.globals().get("PATTSyncDB").expect("PATTSyncDB");
        out.push_str("\nPATTSyncDB = ");
        write_value(&mut out, &value, 0);
        out.push('\n');
        out
    }

    fn export(&self) -> AddonExport {
        let file = self.saved_variables();
        parse_saved_variables(file.as_bytes())
            .unwrap_or_else(|e| panic!("the parser refused the addon's file: {e}\n{file}"))
    }
}

/// WoW's SavedVariables writer: tabs, `["key"] = value,` fields sorted, list entries with
/// `-- [n]` comments, strings with `\"`, `\\`, `\n` and decimal escapes for control bytes.
fn write_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Nil => out.push_str("nil"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => write!(out, "{i}").expect("write"),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
            write!(out, "{}", *n as i64).expect("write")
        }
        Value::Number(n) => write!(out, "{n:?}").expect("write"),
        Value::String(s) => out.push_str(&quote(&s.as_bytes())),
        Value::Table(t) => {
            out.push_str("{\n");
            let len = t.raw_len();
            for i in 1..=len {
                let item: Value = t.raw_get(i).expect("item");
                out.push_str(&"\t".repeat(indent + 1));
                write_value(out, &item, indent + 1);
                writeln!(out, ", -- [{i}]").expect("write");
            }
            let mut fields: Vec<(String, Value)> = Vec::new();
            for pair in t.pairs::<Value, Value>() {
                let (key, item) = pair.expect("pair");
                let key_text = match &key {
                    Value::Integer(i) if (1..=len as i64).contains(i) => continue,
                    Value::Number(n) if n.fract() == 0.0 && *n >= 1.0 && *n <= len as f64 => {
                        continue;
                    }
                    Value::String(s) => format!("[{}]", quote(&s.as_bytes())),
                    Value::Integer(i) => format!("[{i}]"),
                    Value::Number(n) => format!("[{n}]"),
                    Value::Boolean(b) => format!("[{b}]"),
                    other => panic!("unserializable key {other:?}"),
                };
                fields.push((key_text, item));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, item) in fields {
                out.push_str(&"\t".repeat(indent + 1));
                write!(out, "{key} = ").expect("write");
                write_value(out, &item, indent + 1);
                out.push_str(",\n");
            }
            out.push_str(&"\t".repeat(indent));
            out.push('}');
        }
        other => panic!("WoW does not save {other:?}"),
    }
}

fn quote(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'"');
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1F | 0x7F => out.extend_from_slice(format!("\\{b:03}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
    String::from_utf8(out).expect("Lua strings from the addon are UTF-8")
}

fn three_members(game: &Game) {
    game.add_member(
        r#"fullName = "Trogmoon-Senjin", rankName = "Officer", rankIndex = 1, level = 80,
           class = "Druid", classFile = "DRUID", zone = "Dornogal", note = "Discord: trog",
           officerNote = "main; says \"hi\" \\ ok", online = true, achievementPoints = 23450"#,
    );
    game.add_member(
        r#"fullName = "Zoë-BleedingHollow", rankName = "Member", rankIndex = 3, level = 71,
           class = "Death Knight", classFile = "DEATHKNIGHT", zone = "", note = "alt of Trogmoon",
           officerNote = "line one\nline two", online = false, days = 2, hours = 5,
           achievementPoints = 900"#,
    );
    game.add_member(
        r#"fullName = "Quietone-Senjin", rankName = "Initiate", rankIndex = 4, level = 10,
           class = "Mage", classFile = "MAGE", zone = "Stormwind", note = "", officerNote = "",
           online = false, years = 1, months = 2, days = 3, hours = 4, achievementPoints = 0"#,
    );
}

#[test]
fn the_toc_declares_the_saved_variable_and_loads_the_lua_file() {
    assert!(TOC.contains("## SavedVariables: PATTSyncDB"), "{TOC}");
    assert!(TOC.lines().any(|l| l.trim() == "PATTSync.lua"), "{TOC}");
    assert!(TOC.lines().any(|l| l.starts_with("## Interface:")), "{TOC}");
}

#[test]
fn opening_the_roster_exports_every_member_with_notes_and_officer_notes() {
    let game = Game::start(T0, None);
    three_members(&game);
    game.run("FAKE.loadCommunitiesUI() FAKE.openRoster()");
    assert_eq!(
        game.roster_requests(),
        1,
        "the addon asks for fresh roster data"
    );
    assert!(
        game.last_printed().contains("exported 3 guild members"),
        "{}",
        game.last_printed()
    );

    let export = game.export();
    assert_eq!(export.export_time, Some(T0));
    assert_eq!(export.addon_version.as_deref(), Some("1.0.0"));
    assert_eq!(export.guild_name.as_deref(), Some("Pick All The Things"));
    assert_eq!(export.uploaded_by.as_deref(), Some("Trogmoon-Senjin"));
    assert_eq!(export.characters.len(), 3);

    let trog = &export.characters[0];
    assert_eq!(
        (trog.name.as_str(), trog.realm.as_str()),
        ("Trogmoon", "Senjin")
    );
    assert_eq!(trog.class.as_deref(), Some("Druid"));
    assert_eq!(trog.class_file.as_deref(), Some("DRUID"));
    assert_eq!(trog.level, Some(80));
    assert_eq!(trog.rank_index, Some(1));
    assert_eq!(trog.rank_name.as_deref(), Some("Officer"));
    assert_eq!(trog.zone.as_deref(), Some("Dornogal"));
    assert_eq!(trog.guild_note.as_deref(), Some("Discord: trog"));
    assert_eq!(
        trog.officer_note.as_deref(),
        Some(r#"main; says "hi" \ ok"#)
    );
    assert!(trog.is_online);
    assert_eq!(trog.last_online, Some(T0));
    assert_eq!(trog.achievement_points, Some(23450));

    let zoe = &export.characters[1];
    assert_eq!(
        (zoe.name.as_str(), zoe.realm.as_str()),
        ("Zoë", "BleedingHollow")
    );
    // The escaped line break survives the SavedVariables round trip, and is then read as a
    // space: no control character reaches the database (issue 15).
    assert_eq!(zoe.officer_note.as_deref(), Some("line one line two"));
    assert_eq!(zoe.zone, None);
    assert!(!zoe.is_online);
    assert_eq!(zoe.last_online, Some(T0 - 2 * 86400 - 5 * HOUR));

    let quiet = &export.characters[2];
    assert_eq!(
        quiet.guild_note.as_deref(),
        Some(""),
        "an empty note is exported as empty"
    );
    assert_eq!(
        quiet.last_online,
        Some(T0 - (365 + 60 + 3) * 86400 - 4 * HOUR)
    );

    let file = game.saved_variables();
    assert!(
        file.contains("[\"lastExportTime\"] = 1700000000,"),
        "{file}"
    );
    assert!(
        file.contains("[\"exportTimeISO\"] = \"2023-11-14T22:13:20Z\","),
        "{file}"
    );
    assert!(file.contains("[\"memberCount\"] = 3,"), "{file}");
    assert!(file.contains("[\"totalExports\"] = 1,"), "{file}");
}

#[test]
fn roster_updates_without_the_roster_opening_do_not_export() {
    let game = Game::start(T0, None);
    three_members(&game);
    game.run(r#"FAKE.loadCommunitiesUI() FAKE.fire("GUILD_ROSTER_UPDATE", false)"#);
    assert_eq!(game.total_exports(), 0);
    let has_export: bool = game
        .lua
        .load("return PATTSyncDB.lastExport ~= nil")
        .eval()
        .expect("eval");
    assert!(!has_export);
}

#[test]
fn the_roster_opening_exports_at_most_once_every_six_hours() {
    let game = Game::start(T0, None);
    three_members(&game);
    game.run("FAKE.loadCommunitiesUI() FAKE.openRoster()");
    assert_eq!(game.total_exports(), 1);

    game.set_now(T0 + 6 * HOUR - 1);
    game.run(r#"FAKE.members[1].note = "changed" FAKE.openRoster()"#);
    assert_eq!(game.total_exports(), 1, "still cooling down");
    assert_eq!(
        game.roster_requests(),
        1,
        "no roster request during the cooldown"
    );
    assert_eq!(
        game.export().characters[0].guild_note.as_deref(),
        Some("Discord: trog")
    );

    game.set_now(T0 + 6 * HOUR);
    game.run("FAKE.openRoster()");
    assert_eq!(game.total_exports(), 2);
    let export = game.export();
    assert_eq!(export.export_time, Some(T0 + 6 * HOUR));
    assert_eq!(export.characters[0].guild_note.as_deref(), Some("changed"));
}

#[test]
fn the_cooldown_survives_a_reload_through_the_saved_variables() {
    let first = Game::start(T0, None);
    three_members(&first);
    first.run("FAKE.loadCommunitiesUI() FAKE.openRoster()");
    let saved = first.saved_variables();

    let second = Game::start(T0 + HOUR, Some(&saved));
    three_members(&second);
    second.run("FAKE.loadCommunitiesUI() FAKE.openRoster()");
    assert_eq!(
        second.total_exports(),
        1,
        "exported an hour ago, before the reload"
    );
    assert_eq!(second.export().export_time, Some(T0));
}

#[test]
fn force_exports_at_once_whatever_the_cooldown() {
    let game = Game::start(T0, None);
    three_members(&game);
    game.run("FAKE.loadCommunitiesUI() FAKE.openRoster()");
    game.set_now(T0 + 60);
    game.run(r#"FAKE.members[2].officerNote = "promoted" FAKE.slash("force")"#);
    assert_eq!(
        game.roster_requests(),
        2,
        "force asks for fresh roster data"
    );
    assert_eq!(
        game.total_exports(),
        1,
        "the export waits for the roster data"
    );
    game.run(r#"FAKE.fire("GUILD_ROSTER_UPDATE", false)"#);
    assert_eq!(game.total_exports(), 2);
    let export = game.export();
    assert_eq!(export.export_time, Some(T0 + 60));
    assert_eq!(
        export.characters[1].officer_note.as_deref(),
        Some("promoted")
    );

    // The fallback timer of that force finds nothing left to do.
    game.run("FAKE.runTimers()");
    assert_eq!(game.total_exports(), 2);
}

#[test]
fn force_exports_what_the_client_has_when_no_roster_update_arrives() {
    let game = Game::start(T0, None);
    three_members(&game);
    game.run(r#"FAKE.slash("  FORCE ")"#);
    assert_eq!(game.total_exports(), 0);
    game.run("FAKE.runTimers()");
    assert_eq!(game.total_exports(), 1);
    assert_eq!(game.export().characters.len(), 3);
}

#[test]
fn status_prints_the_last_export_time() {
    let game = Game::start(T0, None);
    game.run(r#"FAKE.slash("status")"#);
    assert!(
        game.last_printed().contains("no export yet"),
        "{}",
        game.last_printed()
    );

    three_members(&game);
    game.run(r#"FAKE.slash("force") FAKE.fire("GUILD_ROSTER_UPDATE", false)"#);
    game.set_now(T0 + 3 * HOUR);
    game.run(r#"FAKE.slash("status")"#);
    let printed = game.last_printed();
    let expected: String = game
        .lua
        .load(format!("return os.date('%Y-%m-%d %H:%M', {T0})"))
        .eval()
        .expect("date");
    assert!(
        printed.contains(&format!("last export {expected}")),
        "{printed}"
    );
    assert!(printed.contains("(3 hours ago)"), "{printed}");
    assert!(printed.contains("3 members"), "{printed}");

    game.run(r#"FAKE.slash("")"#);
    assert!(
        game.last_printed().contains("/pattsync force"),
        "usage is printed"
    );
}

#[test]
fn without_officer_note_access_officer_notes_are_left_out_not_blanked() {
    let game = Game::start(T0, None);
    three_members(&game);
    game.run(r#"FAKE.canViewOfficerNote = false FAKE.slash("force") FAKE.runTimers()"#);
    let export = game.export();
    assert!(export.characters.iter().all(|c| c.officer_note.is_none()));
    assert_eq!(
        export.characters[0].guild_note.as_deref(),
        Some("Discord: trog")
    );
}

#[test]
fn outside_a_guild_nothing_is_exported() {
    let game = Game::start(T0, None);
    game.run(r#"FAKE.inGuild = false FAKE.slash("force") FAKE.runTimers()"#);
    assert_eq!(game.total_exports(), 0);
    assert!(game.last_printed().contains("not in a guild"));
}

#[test]
fn a_guild_of_a_thousand_members_exports_and_parses_back() {
    let game = Game::start(T0, None);
    game.run(
        r#"
        local classes = { {"Warrior","WARRIOR"}, {"Druid","DRUID"}, {"Death Knight","DEATHKNIGHT"} }
        for i = 1, 1000 do
          local c = classes[(i % 3) + 1]
          table.insert(FAKE.members, {
            fullName = "Member" .. i .. "-" .. (i % 2 == 0 and "Senjin" or "BleedingHollow"),
            rankName = "Member", rankIndex = i % 5, level = 70 + (i % 11), class = c[1],
            classFile = c[2], zone = "Zone " .. i, note = "note " .. i,
            officerNote = "officer \"" .. i .. "\"", online = (i % 7 == 0), days = i % 30,
            achievementPoints = i * 10 })
        end
        FAKE.loadCommunitiesUI() FAKE.openRoster()
        "#,
    );
    let export = game.export();
    assert_eq!(export.characters.len(), 1000);
    for (i, c) in (1..=1000).zip(&export.characters) {
        assert_eq!(c.name, format!("Member{i}"));
        assert_eq!(
            c.realm,
            if i % 2 == 0 {
                "Senjin"
            } else {
                "BleedingHollow"
            }
        );
        assert_eq!(c.guild_note.as_deref(), Some(format!("note {i}").as_str()));
        assert_eq!(
            c.officer_note.as_deref(),
            Some(format!("officer \"{i}\"").as_str())
        );
        assert_eq!(c.rank_index, Some(i % 5));
        assert_eq!(c.is_online, i % 7 == 0);
    }
}
