-- PATTSync: exports the guild roster (names, realms, classes, levels, ranks, zones, notes and
-- officer notes) into the PATTSyncDB SavedVariables, which WoW writes to disk on logout or
-- /reload. The guild-sync companion watches that file and uploads it; the layout is SPEC §4:
--
--   PATTSyncDB = { lastExportTime, totalExports, lastExport = { exportTime, exportTimeISO,
--     addonVersion, guildName, exportedBy, memberCount, canViewOfficerNote, characters = {
--     { name, realm, class, classFile, level, rank, rankName, zone, note, officerNote,
--       isOnline, lastOnline, achievementPoints }, ... } } }
--
-- When: the guild roster opens (at most once every EXPORT_COOLDOWN seconds), or on
-- `/pattsync force`. `/pattsync status` prints the last export. Written for the Lua 5.1 that
-- WoW embeds; it only reads game state and writes PATTSyncDB.

local ADDON_NAME = ... or "PATTSync"

local ADDON_VERSION = "1.0.0"

-- Seconds between two automatic exports: the roster changes slowly and the file is uploaded
-- whole, so more often would only churn uploads.
local EXPORT_COOLDOWN = 6 * 60 * 60

-- Seconds a forced export waits for fresh roster data before exporting what the client has.
local FORCE_FALLBACK_DELAY = 5

local PATTSync = {
  rosterRequested = false, -- the roster opened and fresh data was asked for
  forcePending = false,    -- /pattsync force is waiting for the roster data
  hooked = false,
}
_G.PATTSync = PATTSync

local function say(message)
  print("|cff33ff99PATTSync|r: " .. message)
end

local function now()
  return time()
end

local function ownRealm()
  local realm = GetNormalizedRealmName and GetNormalizedRealmName()
  if realm and realm ~= "" then
    return realm
  end
  -- The normalized form drops spaces and apostrophes; do the same if the API is unavailable.
  return (string.gsub(GetRealmName() or "", "[%s']", ""))
end

-- The roster names characters "Name-Realm"; older clients omit the realm for your own realm.
local function splitName(fullName)
  local name, realm = string.match(fullName, "^([^%-]+)%-(.+)$")
  if name then
    return name, realm
  end
  return fullName, ownRealm()
end

-- WoW reports how long ago a member was online as years/months/days/hours; this turns it into
-- an approximate unix time (months as 30 days, years as 365) so the server can compare it.
local function lastOnlineTime(index, isOnline, exportTime)
  if isOnline then
    return exportTime
  end
  local years, months, days, hours = GetGuildRosterLastOnline(index)
  if not years then
    return nil
  end
  local ago = ((years * 365) + (months * 30) + days) * 86400 + hours * 3600
  return exportTime - ago
end

local function timeText(t)
  return date("%Y-%m-%d %H:%M", t)
end

-- Export the roster the client has now. Returns true when an export was written.
function PATTSync.Export(reason)
  if not IsInGuild() then
    say("you are not in a guild; nothing exported.")
    return false
  end
  local total = GetNumGuildMembers()
  if not total or total == 0 then
    say("the guild roster has not loaded yet; open it (J) and try again.")
    return false
  end
  local exportTime = now()
  -- Without permission the client hands out empty officer notes; exporting those would erase
  -- the real ones on the server, so they are left out (nil = unknown) instead.
  local canViewOfficerNote = true
  if CanViewOfficerNote then
    canViewOfficerNote = CanViewOfficerNote() and true or false
  end
  local characters = {}
  for i = 1, total do
    local fullName, rankName, rankIndex, level, class, zone, note, officerNote, isOnline, _,
      classFile, achievementPoints = GetGuildRosterInfo(i)
    if fullName then
      local name, realm = splitName(fullName)
      local online = isOnline and true or false
      characters[#characters + 1] = {
        name = name,
        realm = realm,
        class = class,
        classFile = classFile,
        level = level,
        rank = rankIndex,
        rankName = rankName,
        zone = zone,
        note = note or "",
        officerNote = canViewOfficerNote and (officerNote or "") or nil,
        isOnline = online,
        lastOnline = lastOnlineTime(i, online, exportTime),
        achievementPoints = achievementPoints,
      }
    end
  end
  local player = UnitName("player")
  PATTSyncDB.lastExport = {
    exportTime = exportTime,
    exportTimeISO = date("!%Y-%m-%dT%H:%M:%SZ", exportTime),
    addonVersion = ADDON_VERSION,
    guildName = GetGuildInfo("player"),
    exportedBy = player and (player .. "-" .. ownRealm()) or nil,
    memberCount = #characters,
    canViewOfficerNote = canViewOfficerNote,
    characters = characters,
  }
  PATTSyncDB.lastExportTime = exportTime
  PATTSyncDB.totalExports = (PATTSyncDB.totalExports or 0) + 1
  PATTSync.rosterRequested = false
  PATTSync.forcePending = false
  say(string.format("exported %d guild members (%s). It is saved on logout or /reload.",
    #characters, reason))
  return true
end

local function cooldownOver()
  local last = PATTSyncDB and PATTSyncDB.lastExportTime or 0
  return now() - last >= EXPORT_COOLDOWN
end

-- The roster UI opened: ask the server for fresh data; the export happens when it arrives.
function PATTSync.OnRosterOpened()
  if not IsInGuild() or not cooldownOver() then
    return
  end
  PATTSync.rosterRequested = true
  C_GuildInfo.GuildRoster()
end

function PATTSync.OnRosterUpdate()
  if PATTSync.forcePending then
    PATTSync.Export("forced")
  elseif PATTSync.rosterRequested and cooldownOver() then
    PATTSync.Export("guild roster opened")
  end
end

function PATTSync.Force()
  if not IsInGuild() then
    say("you are not in a guild; nothing exported.")
    return
  end
  PATTSync.forcePending = true
  C_GuildInfo.GuildRoster()
  say("asking for the latest guild roster...")
  -- If no roster update arrives (the server throttles requests), export what the client has.
  C_Timer.After(FORCE_FALLBACK_DELAY, function()
    if PATTSync.forcePending then
      PATTSync.Export("forced")
    end
  end)
end

function PATTSync.Status()
  local last = PATTSyncDB and PATTSyncDB.lastExport
  if not last or not last.exportTime then
    say("no export yet. Open the guild roster or type /pattsync force.")
    return
  end
  local hours = math.floor((now() - last.exportTime) / 3600)
  say(string.format("last export %s (%d hours ago), %d members; %d exports in total.",
    timeText(last.exportTime), hours, last.memberCount or 0, PATTSyncDB.totalExports or 0))
end

-- Hook whichever roster window this client has (retail: the Communities frame, loaded on
-- demand; classic: the Guild frame).
local function hookRosterFrames()
  if PATTSync.hooked then
    return
  end
  local frame = _G.CommunitiesFrame or _G.GuildFrame
  if frame and frame.HookScript then
    frame:HookScript("OnShow", PATTSync.OnRosterOpened)
    PATTSync.hooked = true
  end
end

local events = CreateFrame("Frame")
events:RegisterEvent("ADDON_LOADED")
events:RegisterEvent("PLAYER_LOGIN")
events:RegisterEvent("GUILD_ROSTER_UPDATE")
events:SetScript("OnEvent", function(_, event, arg1)
  if event == "ADDON_LOADED" then
    if arg1 == ADDON_NAME then
      -- WoW has loaded the SavedVariables by now; keep what is there.
      PATTSyncDB = PATTSyncDB or {}
      PATTSyncDB.totalExports = PATTSyncDB.totalExports or 0
      hookRosterFrames()
    elseif arg1 == "Blizzard_Communities" or arg1 == "Blizzard_GuildUI" then
      hookRosterFrames()
    end
  elseif event == "PLAYER_LOGIN" then
    hookRosterFrames()
  elseif event == "GUILD_ROSTER_UPDATE" then
    PATTSync.OnRosterUpdate()
  end
end)

SLASH_PATTSYNC1 = "/pattsync"
SlashCmdList["PATTSYNC"] = function(message)
  local command = string.lower(string.match(message or "", "^%s*(%S*)") or "")
  if command == "force" then
    PATTSync.Force()
  elseif command == "status" then
    PATTSync.Status()
  else
    say("/pattsync force — export the roster now; /pattsync status — show the last export.")
  end
end
