#!/usr/bin/env python3
"""Generates the sample guild that `guild-sync demo` bundles.

Writes, next to this script:
  blizzard/roster.json                      Battle.net guild roster
  blizzard/profiles/{realm}/{name}.json     Battle.net character profiles (some left out = 404)
  discord/members.json                      Discord roles + members (API v10 shapes)
  discord/members_later.json                the same server a little later (second snapshot)
  addon/PATTSync.lua                        the PATTSync SavedVariables export
  expected.json                             what the pipeline must conclude (see README.md)

Standard library only, fixed seed: running it again reproduces every file byte for byte.
The hand-made scenarios come first; filler players are then drawn at random and every drawn
name is rejected unless it stays clear (score < 0.70) of every Discord name with a guild role,
so the only automatic links are the intended ones. `verify()` re-checks the finished data.
"""

import datetime as dt
import difflib
import hashlib
import json
import os
import random
import re
import shutil
import unicodedata

SEED = 20261120
HERE = os.path.dirname(os.path.abspath(__file__))

# Every time in the data is relative to this instant; see README.md ("Time").
REFERENCE = dt.datetime(2026, 11, 20, 0, 0, 0, tzinfo=dt.timezone.utc)
EXPORT_TIME = REFERENCE - dt.timedelta(hours=2, minutes=12, seconds=48)
STALE_DAYS = 30
DISCORD_EPOCH_MS = 1420070400000

FUZZY_LINK = 0.85
FUZZY_SUGGEST = 0.70
# Drawn names keep this far from every Discord name (and mains from every character): a margin
# under FUZZY_SUGGEST so a slightly different normalisation cannot create a match.
CLEARANCE = 0.66
WOW_NOTE_MAX = 31  # WoW caps guild and officer notes at 31 characters.

GUILD = {"name": "Ashen Covenant", "id": 70214587, "slug": "ashen-covenant"}
HOME_REALM = "senjin"
REALMS = {
    # slug: (display name, Blizzard realm id, in-game name as GetGuildRosterInfo returns it)
    "senjin": ("Sen'jin", 1185, "Senjin"),
    "area-52": ("Area 52", 3676, "Area52"),
    "bleeding-hollow": ("Bleeding Hollow", 58, "BleedingHollow"),
    "zuljin": ("Zul'jin", 61, "Zuljin"),
}
REALM_WEIGHTS = [("senjin", 50), ("area-52", 20), ("bleeding-hollow", 15), ("zuljin", 15)]

API = "https://us.api.blizzard.com"
STATIC_NS = "static-12.0.5_64514-us"
PROFILE_NS = "profile-us"

# Blizzard class id -> (name, classFile, [(spec id, spec name)], races allowed)
CLASSES = {
    1: ("Warrior", "WARRIOR", [(71, "Arms"), (72, "Fury"), (73, "Protection")], [2, 5, 6, 8, 10, 9, 27, 28, 36, 31, 35, 26, 85]),
    2: ("Paladin", "PALADIN", [(65, "Holy"), (66, "Protection"), (70, "Retribution")], [10, 6, 31]),
    3: ("Hunter", "HUNTER", [(253, "Beast Mastery"), (254, "Marksmanship"), (255, "Survival")], [2, 5, 6, 8, 10, 9, 27, 28, 36, 31, 35, 26, 85]),
    4: ("Rogue", "ROGUE", [(259, "Assassination"), (260, "Outlaw"), (261, "Subtlety")], [2, 5, 8, 10, 9, 27, 36, 31, 35, 26, 85]),
    5: ("Priest", "PRIEST", [(256, "Discipline"), (257, "Holy"), (258, "Shadow")], [5, 6, 8, 10, 9, 27, 28, 36, 31, 35, 26, 85]),
    6: ("Death Knight", "DEATHKNIGHT", [(250, "Blood"), (251, "Frost"), (252, "Unholy")], [2, 5, 6, 8, 10, 9, 27, 28, 36, 31, 35, 26]),
    7: ("Shaman", "SHAMAN", [(262, "Elemental"), (263, "Enhancement"), (264, "Restoration")], [2, 6, 8, 9, 28, 36, 31, 35, 26, 85]),
    8: ("Mage", "MAGE", [(62, "Arcane"), (63, "Fire"), (64, "Frost")], [2, 5, 8, 10, 9, 27, 36, 31, 35, 26, 85]),
    9: ("Warlock", "WARLOCK", [(265, "Affliction"), (266, "Demonology"), (267, "Destruction")], [2, 5, 8, 10, 9, 27, 36, 35, 85]),
    10: ("Monk", "MONK", [(268, "Brewmaster"), (269, "Windwalker"), (270, "Mistweaver")], [2, 5, 6, 8, 10, 9, 27, 28, 36, 31, 35, 26, 85]),
    11: ("Druid", "DRUID", [(102, "Balance"), (103, "Feral"), (104, "Guardian"), (105, "Restoration")], [6, 8, 28, 31]),
    12: ("Demon Hunter", "DEMONHUNTER", [(577, "Havoc"), (581, "Vengeance"), (1480, "Devourer")], [10]),
    13: ("Evoker", "EVOKER", [(1467, "Devastation"), (1468, "Preservation"), (1473, "Augmentation")], [52]),
}
RACES = {
    2: "Orc", 5: "Undead", 6: "Tauren", 8: "Troll", 9: "Goblin", 10: "Blood Elf", 26: "Pandaren",
    27: "Nightborne", 28: "Highmountain Tauren", 31: "Zandalari Troll", 35: "Vulpera",
    36: "Mag'har Orc", 52: "Dracthyr", 85: "Earthen",
}

# In-game rank index -> in-game rank name. 5 and 6 exist in game but no guild-sync rank claims them.
INGAME_RANKS = {0: "Guild Leader", 1: "Officer", 2: "Veteran", 3: "Member", 4: "Initiate", 5: "Social", 6: "Bank Alt"}
# The Discord role guild-sync maps to each in-game rank index (SPEC §3).
RANK_ROLE = {0: "GM", 1: "Officer", 2: "Veteran", 3: "Member", 4: "Initiate"}
GUILD_ROLES = ["GM", "Officer", "Veteran", "Member", "Initiate"]  # most senior first

ZONES = [
    "Silvermoon City", "Eversong Woods", "Zul'Aman", "Harandar", "Voidstorm", "Dornogal",
    "Orgrimmar", "Isle of Dorn", "The Ringing Deeps", "Hallowfall", "Undermine", "K'aresh",
    "Valdrakken", "The Voidspire", "Arathi Highlands",
]

# ---------------------------------------------------------------------------------------------
# Names and scores: a Python mirror of SPEC §5 normalize_name / fuzzy_match_score.
# ---------------------------------------------------------------------------------------------

_FOLD = {"ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "đ": "d", "ł": "l", "þ": "th", "ð": "d"}


def normalize(name):
    out = []
    for ch in unicodedata.normalize("NFKD", name.strip().lower()):
        if unicodedata.combining(ch):
            continue
        out.append(_FOLD.get(ch, ch))
    return "".join(out)


def score(a, b):
    """Symmetric on purpose: SequenceMatcher.ratio() can differ with the argument order, and the
    engine may put either name first, so every check here holds for both orders."""
    return max(_score(a, b), _score(b, a))


def score_min(a, b):
    return min(_score(a, b), _score(b, a))


def _score(a, b):
    a, b = normalize(a), normalize(b)
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    if a in b or b in a:
        return min(len(a), len(b)) / max(len(a), len(b))
    return difflib.SequenceMatcher(None, a, b).ratio()


# Note grammar as SPEC §5 describes it; used only to prove each note says exactly what we intend.
DISCORD_HINT_RES = [
    re.compile(r"\b(?:discord|dc|disc)\s*:\s*@?([\w.]+)", re.IGNORECASE),
    re.compile(r"(?:^|\s)@([\w.]+)"),
]
ALT_HINT_RES = [
    re.compile(r"\balt\s+(?:of|for)\s+([^\s,;|]+)", re.IGNORECASE),
    re.compile(r"([^\s,;|]+)'s\s+alt\b", re.IGNORECASE),
    re.compile(r"\bmain\s*:\s*([^\s,;|]+)", re.IGNORECASE),
]


def hints(note, res):
    return [m.group(1) for r in res for m in r.finditer(note or "")]


# ---------------------------------------------------------------------------------------------
# The model the generator fills in.
# ---------------------------------------------------------------------------------------------


class Char:
    def __init__(self, name, realm, rank, player=None, note="", onote="", how=None, cls=None,
                 level=90, profile=True, stale=False, online=False):
        self.name = unicodedata.normalize("NFC", name)
        self.realm = realm
        self.rank = rank
        self.player = player  # Player or None (orphan)
        self.note = note
        self.onote = onote
        self.how = how  # expected link_source, None = stays unlinked
        self.cls = cls
        self.level = level
        self.profile = profile
        self.stale = stale
        self.online = online


class Discord:
    def __init__(self, username, roles, global_name=None, nick=None, bot=False, kind="linked",
                 discriminator="0"):
        self.username = username
        self.roles = roles  # role names
        self.global_name = global_name
        self.nick = nick
        self.bot = bot
        self.kind = kind  # linked / orphan / suggestion / guest / bot
        self.discriminator = discriminator

    @property
    def display(self):
        return self.nick or self.global_name or self.username

    @property
    def guild_role(self):
        return any(r in GUILD_ROLES for r in self.roles)


class Player:
    def __init__(self, key, discord=None, scenario=None):
        self.key = key
        self.discord = discord
        self.scenario = scenario
        self.chars = []

    def add(self, char):
        char.player = self
        self.chars.append(char)
        return char


# ---------------------------------------------------------------------------------------------
# Hand-made scenarios (listed in README.md).
# ---------------------------------------------------------------------------------------------


def scenarios():
    players, orphans, discords = [], [], []

    def player(key, discord, scenario):
        p = Player(key, discord, scenario)
        players.append(p)
        if discord:
            discords.append(discord)
        return p

    # Guild Leader <-> GM is not a mismatch; five characters, every alt-note form.
    p = player("vaelthorn", Discord("vaelthorn", ["GM", "Raider"], global_name="Vael"), "gm_with_alts")
    p.add(Char("Vaelthorn", "senjin", 0, how="exact_name", cls=12))
    p.add(Char("Mistwhisper", "senjin", 1, note="Main: Vaelthorn", how="alt_note", cls=10))
    p.add(Char("Corvane", "area-52", 1, note="alt of Vaelthorn", how="alt_note", cls=4, stale=True))
    p.add(Char("Ashgrin", "senjin", 1, note="Vaelthorn's alt", how="alt_note", cls=1))
    p.add(Char("Pyrewick", "zuljin", 3, note="alt for Vaelthorn", how="alt_note", cls=8, level=84))

    # Accented character name <-> plain Discord username; alt note written without the accents.
    p = player("zatanna", Discord("zatanna", ["Member", "Raider"], global_name="Zat"), "accented_exact")
    p.add(Char("Zatañña", "senjin", 3, how="exact_name", cls=9, note="Lock main, M+ 10s"))
    p.add(Char("Hexxbolt", "senjin", 3, note="Zatanna's alt", how="alt_note", cls=7))

    p = player("aerthas", Discord("aerthas", ["Veteran", "Raider"]), "ligature_exact")
    p.add(Char("Ærthas", "area-52", 2, how="exact_name", cls=2))
    p.add(Char("Brightmane", "area-52", 3, note="alt of Ærthas", how="alt_note", cls=11))

    # The same name on two realms, both exact to one username. Loses its Member role later.
    p = player("brogar", Discord("brogar", ["Member", "Raider"], global_name="Brøgar"), "same_name_two_realms")
    p.add(Char("Brøgar", "senjin", 3, how="exact_name", cls=1))
    p.add(Char("Brøgar", "zuljin", 4, how="exact_name", cls=6, note="PvP toon"))

    # The same name on two realms, both exact to a Discord *display name* (the account's global
    # name: a server nickname alone does not claim a Veteran-or-above character, issue 14).
    p = player("lunara", Discord("moonlitdreams", ["Veteran"], global_name="Lûnara"), "display_name_exact")
    p.add(Char("Lûnara", "senjin", 2, how="exact_name", cls=11, note="Resto/Boomy"))
    p.add(Char("Lûnara", "area-52", 2, how="exact_name", cls=5, level=87))

    # In-game Member, Discord Veteran: rank mismatch.
    p = player("seraphine", Discord("seraphine", ["Veteran", "Raider"], global_name="Séraphine"), "rank_mismatch_low")
    p.add(Char("Séraphine", "bleeding-hollow", 3, how="exact_name", cls=5))

    # Fuzzy >= 0.85 -> link (medium confidence).
    p = player("vorthalian", Discord("vorthalian", ["Member"]), "fuzzy_ratio")
    p.add(Char("Vorthalion", "zuljin", 3, how="fuzzy_name", cls=8))
    p = player("thrallson", Discord("thrallson", ["Member", "Raider"], global_name="Thrallson"), "fuzzy_contains")
    p.add(Char("Thrallsonn", "senjin", 3, how="fuzzy_name", cls=7))

    # A guild-note hint may name any present Discord user, guild role or not (SPEC §5): the
    # link is made, and the checker flags the player: linked, ranked in game, no guild role.
    p = player("lazyhunter", Discord("lazyhunter", ["Pug"], kind="guest"), "note_names_guest")
    p.add(Char("Rakhun", "zuljin", 3, cls=3, note="disc: lazyhunter", how="guild_note"))

    # Discord hints in the guild note.
    p = player("shadowpaw", Discord("shadowpaw", ["Veteran", "Raider"], global_name="Shadow"), "note_discord")
    p.add(Char("Nightbloom", "senjin", 2, note="Discord: Shadowpaw", how="guild_note", cls=11))
    p.add(Char("Thornveil", "bleeding-hollow", 3, note="alt of Nightbloom", how="alt_note", cls=3))
    # In-game Officer, Discord Member: rank mismatch (fixed in members_later.json).
    p = player("grimtotem", Discord("grimtotem", ["Member"], global_name="Grim"), "note_dc_rank_mismatch")
    p.add(Char("Ozrakh", "senjin", 1, note="DC: grimtotem", how="guild_note", cls=7))
    p = player("kittyrawr", Discord("kittyrawr", ["Member"], nick="Kitty"), "note_disc")
    p.add(Char("Felarion", "area-52", 3, note="disc: kittyrawr", how="guild_note", cls=12))
    p = player("moonfury", Discord("moonfury", ["Initiate"]), "note_at")
    p.add(Char("Nyxelle", "zuljin", 4, note="trial healer @moonfury", how="guild_note", cls=13))

    # Discord hints in the officer note.
    p = player("tankdaddy", Discord("tankdaddy", ["Veteran", "Raider"], global_name="Big Tank Daddy"), "onote_discord")
    p.add(Char("Bulwark", "senjin", 2, onote="Discord: tankdaddy", how="officer_note", cls=1, note="Raid tank"))
    p = player("velvetpaws", Discord("velvetpaws", ["Officer", "Raider"], global_name="Velvet"), "onote_dc")
    p.add(Char("Sylvenne", "bleeding-hollow", 1, onote="DC: velvetpaws", how="officer_note", cls=10))
    p = player("ironjaw", Discord("ironjaw", ["Member"]), "onote_at")
    p.add(Char("Durgath", "zuljin", 3, onote="vouched by Ozrakh @ironjaw", how="officer_note", cls=6))

    # Highest in-game rank wins: Veteran main + Initiate alt vs Discord Veteran -> no mismatch.
    p = player("tarvos", Discord("tarvos", ["Veteran"]), "highest_rank_wins")
    p.add(Char("Tarvos", "senjin", 2, how="exact_name", cls=3))
    p.add(Char("Quillfeather", "senjin", 4, note="alt of Tarvos", how="alt_note", cls=13, level=71))

    # An alt group nobody on Discord claims: one player, discord_user_id NULL.
    p = player("dravenholt", None, "alt_group_no_discord")
    p.add(Char("Dravenholt", "bleeding-hollow", 3, cls=6, note="Frost DK, weekends"))
    p.add(Char("Sylvarra", "bleeding-hollow", 3, note="alt of Dravenholt", how="alt_note", cls=5))
    p.add(Char("Kragnuk", "senjin", 4, note="Main: Dravenholt", how="alt_note", cls=9, level=62))
    for c in p.chars:
        c.how = c.how or "alt_group"

    # 0.70-0.85 -> auto_link_suggestion, no link (character and Discord user stay orphans).
    discords.append(Discord("jainaxo", ["Member"], nick="Jaina_Proud", kind="suggestion"))
    orphans.append(Char("Jainaa", "senjin", 3, cls=8))
    discords.append(Discord("illidar", ["Initiate"], global_name="Illidar", kind="suggestion"))
    orphans.append(Char("Illidarie", "area-52", 4, cls=12))

    # Orphan characters: nobody claims them.
    orphans += [
        Char("Gorvash", "senjin", 3, cls=1, note="pug from M+"),  # a guest is called gorvash
        Char("Mokthar", "senjin", 3, cls=6, stale=True),
        Char("Nessalyn", "area-52", 4, cls=5, note="Returning player", stale=True),
        Char("Trogmire", "bleeding-hollow", 3, cls=7, profile=False, level=70),
        Char("Velanthis", "senjin", 2, cls=2, note="Raided in DF", stale=True),
        Char("Snorgrub", "zuljin", 4, cls=4, profile=False, level=45),
        Char("Quelindra", "senjin", 3, cls=13, stale=True),
        Char("Harrowgast", "bleeding-hollow", 4, cls=9, onote="Say \"hi\" \\ check IRL", stale=True),
        Char("Zirkel", "area-52", 3, cls=10, note="Brewfest only"),
        Char("Ostrava", "senjin", 4, cls=3, onote="Trial ends 12/01\nask Tarvos"),
        # Unmapped rank index 6 (in game "Bank Alt"): guild_rank_id NULL plus a warning.
        Char("Coinpurse", "senjin", 6, cls=9, level=1, profile=False, onote="Guild bank 1"),
        Char("Gildedvault", "senjin", 6, cls=5, level=20, onote="Guild bank 2"),
    ]

    # Discord members with a guild role and no character (the two suggestions are orphans too).
    discords += [
        Discord("kevin_irl", ["Member"], global_name="Kevin", kind="orphan"),  # leaves later
        Discord("sleepyotter", ["Initiate"], global_name="Otter", kind="orphan"),
        Discord("retired.raider", ["Veteran"], global_name="Retired", kind="orphan"),
        Discord("newbie_2026", ["Initiate"], kind="orphan"),
        Discord("lorekeeper", ["Member", "Raider"], global_name="Lore", kind="orphan"),
        Discord("healztho", ["Member"], nick="Healz", kind="orphan"),
    ]

    # Guests the matcher must ignore even though a note or a name points at them.
    discords += [
        Discord("gorvash", ["Pug"], global_name="Gorvash", kind="guest"),
    ]
    # Bots are ignored, even with guild roles.
    discords += [
        Discord("MEE6", ["MEE6"], bot=True, kind="bot", discriminator="4876"),
        Discord("Dyno", ["Dyno"], bot=True, kind="bot", discriminator="3861"),
        Discord("Raid-Helper", ["Raid-Helper", "Officer"], bot=True, kind="bot", discriminator="3806"),
        Discord("WowAudit", ["WowAudit", "Member"], bot=True, kind="bot", discriminator="0942"),
        Discord("carl-bot", ["carl-bot"], bot=True, kind="bot", discriminator="1536"),
    ]
    return players, orphans, discords


# ---------------------------------------------------------------------------------------------
# Filler: ordinary guild members drawn at random, kept clear of every other name.
# ---------------------------------------------------------------------------------------------

PREFIXES = [
    "Thal", "Kor", "Vel", "Zul", "Mor", "Gar", "Ash", "Bel", "Dra", "Eld", "Fen", "Gor", "Hal",
    "Ily", "Jor", "Kaz", "Lor", "Mal", "Nar", "Ori", "Pyr", "Rha", "Syl", "Tor", "Ul", "Vor",
    "Wyn", "Xal", "Yor", "Bry", "Cal", "Dag", "Ery", "Fal", "Gul", "Hro", "Isk", "Jas", "Kel",
    "Lyr", "Mag", "Nym", "Ost", "Qua", "Ril", "Sar", "Tyr", "Ves", "Zeph", "Aer", "Bal", "Cyr",
]
SUFFIXES = [
    "grim", "wyn", "dra", "thas", "rok", "ria", "dor", "mir", "nash", "zug", "lia", "ven", "gore",
    "shade", "bane", "mist", "fang", "hoof", "claw", "thorn", "ara", "iel", "osh", "ka", "ix",
    "anis", "ethil", "orn", "ukk", "ala", "indra", "ius", "essa", "an", "ok", "eth", "ira",
]
PUN_NAMES = [
    "Holysmokes", "Shamwow", "Stabbyjoe", "Tankenstein", "Pewpewlaser", "Dotsndots", "Chopsuey",
    "Totemtastic", "Moonbeamz", "Bubblehearth", "Meatshield", "Healzilla", "Sneakypete",
    "Frostbyte", "Bearlyalive", "Vulpixie", "Cowabunga", "Mooncow", "Lockntroll", "Felfire",
    "Hotpocket", "Noodlearms", "Wafflez", "Critterbane", "Boomchikin", "Deadlyfinn", "Pocketheals",
    "Soggybread", "Spicymeme", "Tauntaun", "Voidsnack", "Manamuffin", "Chainheal", "Drpepper",
]
MIDDLES = [""] * 4 + ["a", "e", "i", "o", "u", "ar", "en", "or", "il", "ath", "y"]
ACCENTS = {"a": "áä", "e": "éë", "i": "íï", "o": "öø", "u": "ú"}
HANDLE_A = ["sleepy", "grumpy", "salty", "lazy", "crit", "tiny", "night", "storm", "iron", "wild",
            "quiet", "pixel", "coffee", "taco", "noodle", "cosmic", "rusty", "lucky", "feral", "mellow"]
HANDLE_B = ["panda", "otter", "wolf", "bear", "fox", "raven", "goblin", "murloc", "gnome", "kobold",
            "yak", "owl", "toad", "moth", "badger", "crab", "gecko", "lynx", "mole", "heron"]
FIRST = ["Mike", "Jess", "Tom", "Sarah", "Dan", "Alex", "Chris", "Kat", "Ben", "Nina", "Omar",
         "Lena", "Raj", "Zoe", "Sam", "Ivan", "Maya", "Leo", "Erin", "Hugo", "Priya", "Marcus",
         "Becca", "Tyler", "Jonas", "Fatima", "Derek", "Quinn", "Wes", "Grace", "Pablo", "Yuki",
         "Dmitri", "Holly", "Trent", "Aisha", "Brandon", "Kim", "Luis", "Megan"]
ONOTES = ["Raid team A", "Sat raider", "Bench: attendance", "Recruited on WoWProgress",
          "Mythic+ team", "Trial passed 10/02", "Crafter: BS/Mining", "Key pusher", "Loot council",
          "Promote in Dec?", ""]
MAIN_NOTES = ["Heroic team", "Raid team A", "M+ 2.8k", "Casual", "Crafting orders",
              "PvP", "Mythic raider", "Weekend raider", "", "", "", ""]


class Pool:
    """Every name drawn so far, with the rejection test that keeps the data precise."""

    def __init__(self, chars, discords):
        self.chars = list(chars)
        self.discords = list(discords)
        self.taken = {(normalize(c.name), c.realm) for c in chars}
        self.char_keys = {normalize(c.name) for c in chars}
        self.handles = {normalize(d.username) for d in discords}
        self.rejected = set()  # the pool only grows, so a rejected name stays rejected

    def char_ok(self, name, main=False):
        n = normalize(name)
        if not re.fullmatch(r"[A-Z][a-zà-ÿ]{1,11}", unicodedata.normalize("NFC", name)):
            return False
        if (n, main) in self.rejected or re.search(r"(.)\1\1", n) or n in self.char_keys or n in self.handles:
            return False
        if not self._clear(n, main):
            self.rejected.add((n, main))
            return False
        return True

    def _clear(self, n, main):
        if any(score(n, d.username) >= CLEARANCE or score(n, d.display) >= CLEARANCE
               for d in self.discords if d.guild_role and not d.bot):
            return False
        # Keep character names apart too, so an alt note can never point at the wrong one; a main
        # also becomes a Discord name, so it keeps the same distance as Discord names do.
        limit = CLEARANCE if main else 0.75
        return all(score(n, c.name) < limit for c in self.chars)

    def discord_ok(self, d, own_main=None):
        for text in {d.username, d.display}:
            n = normalize(text)
            if n in self.handles or any(n == normalize(o.display) for o in self.discords):
                return False
            for c in self.chars:
                if own_main is not None and c is own_main:
                    continue
                if score(n, c.name) >= CLEARANCE:
                    return False
        return True


def accent(rng, name):
    spots = [i for i, ch in enumerate(name) if i > 0 and ch in ACCENTS]
    if not spots:
        return name
    i = rng.choice(spots)
    return name[:i] + rng.choice(ACCENTS[name[i]]) + name[i + 1:]


def draw_char_name(rng, pool, puns, main=False):
    while True:
        if puns and rng.random() < 0.18:
            name = puns.pop(rng.randrange(len(puns)))
        else:
            name = rng.choice(PREFIXES) + rng.choice(MIDDLES) + rng.choice(SUFFIXES)
            if rng.random() < 0.05:
                name = accent(rng, name)
        if len(name) <= 12 and pool.char_ok(name, main):
            return name


def draw_handle(rng):
    style = rng.random()
    if style < 0.4:
        return rng.choice(HANDLE_A) + rng.choice(["", "_", "."]) + rng.choice(HANDLE_B)
    if style < 0.7:
        return rng.choice(HANDLE_B) + str(rng.randrange(7, 2000))
    return rng.choice(FIRST).lower() + rng.choice(["_", ".", ""]) + str(rng.randrange(80, 100))


def weighted(rng, pairs):
    total = sum(w for _, w in pairs)
    x = rng.uniform(0, total)
    for v, w in pairs:
        x -= w
        if x <= 0:
            return v
    return pairs[-1][0]


def filler(rng, players, orphans, discords):
    chars = [c for p in players for c in p.chars] + orphans
    pool = Pool(chars, discords)
    puns = list(PUN_NAMES)
    # (main rank, count, size distribution) -> about 86 ordinary players.
    ranks = [1] * 3 + [2] * 22 + [3] * 42 + [4] * 19
    rng.shuffle(ranks)
    sizes = [1] * 14 + [2] * 20 + [3] * 22 + [4] * 18 + [5] * 12
    rng.shuffle(sizes)
    multi_role_done = False
    for idx, (rank, size) in enumerate(zip(ranks, sizes)):
        main_name = draw_char_name(rng, pool, puns, main=True)
        realm = HOME_REALM if rng.random() < 0.65 else weighted(rng, REALM_WEIGHTS)
        main = Char(main_name, realm, rank, cls=rng.randrange(1, 14), note=rng.choice(MAIN_NOTES),
                    onote=rng.choice(ONOTES) if rng.random() < 0.4 else "")
        pool.chars.append(main)
        pool.char_keys.add(normalize(main_name))
        # How the main finds its Discord account (redrawn when the name would collide).
        roles = [RANK_ROLE[rank]]
        if rank <= 2 or rng.random() < 0.35:
            roles.append("Raider")
        if rng.random() < 0.06:
            roles.append("Server Booster")
        if rank == 2 and not multi_role_done:
            roles.insert(0, "Initiate")  # leftover trial role: highest_guild_role must still be Veteran
            multi_role_done = True
        base_note, base_onote = main.note, main.onote
        while True:
            main.note, main.onote = base_note, base_onote
            style = rng.random()
            if style < 0.62:
                d = Discord(normalize(main_name), roles,
                            global_name=rng.choice([None, main_name, rng.choice(FIRST)]))
                how = "exact_name"
            elif style < 0.82:
                d = Discord(draw_handle(rng), roles, global_name=rng.choice([None, rng.choice(FIRST)]),
                            nick=main_name)
                if rank <= 2:
                    # A server nickname alone does not claim a Veteran-or-above character (issue
                    # 14): these players carry the name as their account's global name.
                    d.global_name, d.nick = main_name, None
                how = "exact_name"
            else:
                d = Discord(draw_handle(rng), roles, global_name=rng.choice([None, rng.choice(FIRST)]))
                tag = rng.choice(["Discord: ", "DC: ", "disc: ", "@"])
                hint = tag + d.username
                if len(hint) > WOW_NOTE_MAX:
                    continue
                if rng.random() < 0.5:
                    main.note = hint
                    how = "guild_note"
                else:
                    main.onote = hint
                    how = "officer_note"
            if pool.discord_ok(d, own_main=main if how == "exact_name" else None):
                break
        main.how = how
        p = Player("p%03d" % idx, d, "filler")
        p.add(main)
        players.append(p)
        discords.append(d)
        pool.discords.append(d)
        pool.handles.add(normalize(d.username))
        for _ in range(size - 1):
            name = draw_char_name(rng, pool, puns)
            alt_realm = realm if rng.random() < 0.6 else weighted(rng, REALM_WEIGHTS)
            alt_rank = rank if rank >= 3 and rng.random() < 0.7 else max(rank, rng.choice([1, 3, 3, 4]))
            form = rng.random()
            if form < 0.33:
                note, how = "alt of " + main_name, "alt_note"
            elif form < 0.58:
                note, how = main_name + "'s alt", "alt_note"
            elif form < 0.86:
                note, how = "Main: " + main_name, "alt_note"
            else:
                note, how = "DC: " + d.username, "guild_note"
            if len(note) > WOW_NOTE_MAX:
                note, how = "Main: " + main_name, "alt_note"
            level = weighted(rng, [(90, 60), (rng.randrange(80, 90), 25), (rng.randrange(10, 80), 10),
                                   (rng.randrange(1, 10), 5)])
            alt = Char(name, alt_realm, alt_rank, note=note, how=how, cls=rng.randrange(1, 14),
                       level=level, profile=level >= 10)
            p.add(alt)
            pool.chars.append(alt)
            pool.char_keys.add(normalize(name))


# ---------------------------------------------------------------------------------------------
# Guests (no guild role): ignored by the matcher.
# ---------------------------------------------------------------------------------------------


def guests(rng, discords, chars):
    out = []
    role_sets = [[]] * 16 + [["Pug"]] * 10 + [["Pug", "Server Booster"]] * 2 + [["Muted"]] * 2 + [["Raider"]] * 3
    keys = {normalize(d.username) for d in discords} | {normalize(c.name) for c in chars}
    gnames = [None, None, "🐢 turtle", "Friend of Kat", "Nightwing", "Doc"]
    for roles in role_sets:
        while True:
            h = draw_handle(rng)
            if normalize(h) not in keys:
                break
        keys.add(normalize(h))
        out.append(Discord(h, list(roles), global_name=rng.choice(gnames + [rng.choice(FIRST)]), kind="guest"))
    return out


# ---------------------------------------------------------------------------------------------
# Verification: the precision rules the README promises.
# ---------------------------------------------------------------------------------------------


def verify(players, chars, discords):
    candidates = [d for d in discords if d.guild_role and not d.bot]
    by_norm = {}
    for d in candidates:
        for text in {d.username, d.display}:
            other = by_norm.setdefault(normalize(text), d)
            assert other is d, "two Discord users share the name %r" % text
    names = {}
    for c in chars:
        assert re.fullmatch(r"[A-ZÀ-Þ][a-zà-ÿ]{1,11}", c.name), c.name
        key = (normalize(c.name), c.realm)
        assert key not in names, "duplicate character %s-%s" % key
        names[key] = c
        assert len(c.note) <= WOW_NOTE_MAX and len(c.onote) <= WOW_NOTE_MAX, (c.name, c.note, c.onote)
    norm_to_chars = {}
    for c in chars:
        norm_to_chars.setdefault(normalize(c.name), []).append(c)
    for c in chars:
        own = c.player.discord if c.player else None
        best = {}
        for d in candidates:
            best[d.username] = max(score(c.name, d.username), score(c.name, d.display))
        if c.how == "exact_name":
            assert best[own.username] == 1.0, c.name
        if c.how == "fuzzy_name":
            assert FUZZY_LINK <= score_min(c.name, own.username) <= best[own.username] < 1.0, c.name
        for user, s in best.items():
            intended = own is not None and user == own.username and c.how in ("exact_name", "fuzzy_name")
            suggestion = (c.name, user) in SUGGESTIONS
            if suggestion:
                assert FUZZY_SUGGEST <= score_min(c.name, user) and s < FUZZY_LINK, (c.name, user, s)
            elif not intended:
                assert s < FUZZY_SUGGEST, "accidental match %s ~ %s = %.3f" % (c.name, user, s)
        # Notes say exactly what they should.
        dh = hints(c.note, DISCORD_HINT_RES)
        oh = hints(c.onote, DISCORD_HINT_RES)
        ah = hints(c.note, ALT_HINT_RES) + hints(c.onote, ALT_HINT_RES)
        if c.how == "guild_note":
            assert [normalize(h) for h in dh] == [normalize(own.username)] and not oh and not ah, c.name
        elif c.how == "officer_note":
            assert [normalize(h) for h in oh] == [normalize(own.username)] and not dh and not ah, c.name
        elif c.how == "alt_note" or (c.how == "alt_group" and ah):
            assert len(ah) == 1 and not dh and not oh, (c.name, c.note)
            targets = norm_to_chars.get(normalize(ah[0]), [])
            assert len(targets) == 1 and targets[0].player is c.player, (c.name, ah)
        else:
            assert not ah, (c.name, c.note)
            for h in dh + oh:  # a hint may only name someone who is not a candidate
                assert normalize(h) not in by_norm, (c.name, h)
    suggestion_chars = {s[0] for s in SUGGESTIONS}
    for c in chars:
        if c.player is None:
            assert c.how is None
        if c.name in suggestion_chars:
            assert c.player is None


SUGGESTIONS = {("Jainaa", "jainaxo"), ("Illidarie", "illidar")}


# ---------------------------------------------------------------------------------------------
# Attributes: levels, specs, timestamps, ids.
# ---------------------------------------------------------------------------------------------


def snowflake(ms, seq):
    return str(((ms - DISCORD_EPOCH_MS) << 22) | (1 << 17) | (seq & 0xFFF))


def ms(t):
    return int(t.timestamp() * 1000)


def discord_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


def fill_attributes(rng, players, chars):
    acct_points = {}
    ids = rng.sample(range(120_000_000, 260_000_000), len(chars))
    stale_fill = 15 - sum(c.stale for c in chars)
    # A whole ordinary player gone quiet, then single alts, until 15 characters are stale.
    fillers = [p for p in players if p.scenario == "filler"]
    quiet = next(p for p in fillers if len(p.chars) == 2 and all(c.level >= 10 for c in p.chars))
    for c in quiet.chars:
        c.stale = True
    stale_fill -= 2
    alts = [c for p in fillers if p is not quiet for c in p.chars[1:] if c.profile]
    for c in rng.sample(alts, stale_fill):
        c.stale = True
    # About 10 % without a profile (Blizzard answers 404): long inactive and every level < 10.
    missing_target = round(len(chars) * 0.10) - sum(not c.profile for c in chars)
    idle = [c for p in fillers if p is not quiet for c in p.chars[1:] if c.profile and not c.stale]
    for c in rng.sample(idle, missing_target):
        c.profile = False
    online = rng.sample([c for c in chars if c.profile and not c.stale], 9)
    for c in online:
        c.online = True
    for i, c in enumerate(chars):
        c.id = ids[i]
        cname, cfile, specs, races = CLASSES[c.cls]
        c.spec = rng.choice(specs)
        c.race = rng.choice(races)
        c.gender = rng.choice(["MALE", "FEMALE"])
        owner = c.player.key if c.player else "orphan:" + c.name
        if owner not in acct_points:
            acct_points[owner] = rng.randrange(30, 460) * 100 + rng.randrange(0, 100) // 5 * 5
        c.ach = acct_points[owner]
        if c.level >= 90:
            c.ilvl = rng.randrange(236, 283)
        elif c.level >= 80:
            c.ilvl = rng.randrange(190, 236)
        else:
            c.ilvl = max(1, c.level * 2 + rng.randrange(0, 25))
        c.avg_ilvl = c.ilvl + rng.randrange(0, 4)
        is_main = c.player is None or c.player.chars[0] is c
        if c.online:
            c.last_login = EXPORT_TIME - dt.timedelta(minutes=rng.randrange(5, 150))
        elif c.stale:
            c.last_login = EXPORT_TIME - dt.timedelta(days=rng.randrange(61, 520), seconds=rng.randrange(86400))
        elif not c.profile:
            c.last_login = EXPORT_TIME - dt.timedelta(days=rng.randrange(120, 1400), seconds=rng.randrange(86400))
        else:
            days = 4 if is_main else 9
            c.last_login = EXPORT_TIME - dt.timedelta(seconds=rng.randrange(3600, days * 86400))
        c.zone = rng.choice(ZONES)


def last_online(c):
    """What PATTSync.lua writes: an approximate unix time, from the years/months/days/hours
    GetGuildRosterLastOnline reports (months as 30 days, years as 365)."""
    export = int(EXPORT_TIME.timestamp())
    if c.online:
        return export
    secs = int((EXPORT_TIME - c.last_login).total_seconds())
    days, hours = secs // 86400, secs % 86400 // 3600
    years, days = days // 365, days % 365
    months, days = days // 30, days % 30
    return export - (((years * 365) + (months * 30) + days) * 86400 + hours * 3600)


# ---------------------------------------------------------------------------------------------
# Writers.
# ---------------------------------------------------------------------------------------------


def href(path, ns):
    return {"href": "%s%s?namespace=%s" % (API, path, ns)}


def realm_ref(slug, with_name):
    name, rid, _ = REALMS[slug]
    out = {"key": href("/data/wow/realm/%d" % rid, "dynamic-us")}
    if with_name:
        out["name"] = name
    out["id"] = rid
    out["slug"] = slug
    return out


def write_json(rel, obj):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def guild_obj():
    return {
        "key": href("/data/wow/guild/%s/%s" % (HOME_REALM, GUILD["slug"]), PROFILE_NS),
        "name": GUILD["name"],
        "id": GUILD["id"],
        "realm": realm_ref(HOME_REALM, True),
        "faction": {"type": "HORDE", "name": "Horde"},
    }


def char_path(c):
    return "/profile/wow/character/%s/%s" % (c.realm, c.name.lower())


def write_blizzard(rng, chars):
    roster_order = sorted(chars, key=lambda c: hashlib.sha256(("%s-%s" % (c.name, c.realm)).encode()).hexdigest())
    members = []
    for c in roster_order:
        members.append({
            "character": {
                "key": href(char_path(c), PROFILE_NS),
                "name": c.name,
                "id": c.id,
                "realm": realm_ref(c.realm, False),
                "level": c.level,
                "playable_class": {"key": href("/data/wow/playable-class/%d" % c.cls, STATIC_NS), "id": c.cls},
                "playable_race": {"key": href("/data/wow/playable-race/%d" % c.race, STATIC_NS), "id": c.race},
            },
            "rank": c.rank,
        })
    write_json("blizzard/roster.json", {
        "_links": {"self": href("/data/wow/guild/%s/%s/roster" % (HOME_REALM, GUILD["slug"]), PROFILE_NS)},
        "guild": guild_obj(),
        "members": members,
    })
    shutil.rmtree(os.path.join(HERE, "blizzard", "profiles"), ignore_errors=True)
    for c in chars:
        if not c.profile:
            continue
        cname, _, _, _ = CLASSES[c.cls]
        spec_id, spec_name = c.spec
        write_json("blizzard/profiles/%s/%s.json" % (c.realm, c.name.lower()), {
            "_links": {"self": href(char_path(c), PROFILE_NS)},
            "id": c.id,
            "name": c.name,
            "gender": {"type": c.gender, "name": c.gender.title()},
            "faction": {"type": "HORDE", "name": "Horde"},
            "race": {"key": href("/data/wow/playable-race/%d" % c.race, STATIC_NS), "name": RACES[c.race], "id": c.race},
            "character_class": {"key": href("/data/wow/playable-class/%d" % c.cls, STATIC_NS), "name": cname, "id": c.cls},
            "active_spec": {"key": href("/data/wow/playable-specialization/%d" % spec_id, STATIC_NS), "name": spec_name, "id": spec_id},
            "realm": realm_ref(c.realm, True),
            "guild": guild_obj(),
            "level": c.level,
            "experience": 0 if c.level >= 90 else rng.randrange(0, 250000),
            "achievement_points": c.ach,
            "last_login_timestamp": ms(c.last_login),
            "average_item_level": c.avg_ilvl,
            "equipped_item_level": c.ilvl,
            "name_search": c.name.lower(),
        })


ROLE_DEFS = [
    # name, colour, hoist, managed
    ("Muted", 0x546E7A, False, False),
    ("Pug", 0x95A5A6, False, False),
    ("Initiate", 0x1ABC9C, True, False),
    ("Member", 0x2ECC71, True, False),
    ("Raider", 0xE67E22, False, False),
    ("Veteran", 0x3498DB, True, False),
    ("Officer", 0x9B59B6, True, False),
    ("GM", 0xF1C40F, True, False),
    ("Server Booster", 0xF47FFF, False, True),
    ("MEE6", 0, False, True),
    ("Dyno", 0, False, True),
    ("Raid-Helper", 0, False, True),
    ("WowAudit", 0, False, True),
    ("carl-bot", 0, False, True),
]


def discord_docs(rng, discords):
    guild_created = dt.datetime(2019, 3, 2, 18, 4, 11, tzinfo=dt.timezone.utc)
    guild_id = snowflake(ms(guild_created), 0)
    roles = [{"id": guild_id, "name": "@everyone", "color": 0, "hoist": False, "position": 0,
              "permissions": "1071698660929", "managed": False, "mentionable": False}]
    role_ids = {}
    for i, (name, colour, hoist, managed) in enumerate(ROLE_DEFS):
        created = guild_created + dt.timedelta(days=3 + i * 11, seconds=rng.randrange(86400))
        rid = snowflake(ms(created), i + 1)
        role_ids[name] = rid
        role = {"id": rid, "name": name, "color": colour, "hoist": hoist, "position": i + 1,
                "permissions": "8" if name in ("GM", "Officer") else "1071698660928", "managed": managed,
                "mentionable": name in GUILD_ROLES or name == "Raider"}
        if name == "Server Booster":
            role["tags"] = {"premium_subscriber": None}
        roles.append(role)
    members = {}
    for seq, d in enumerate(discords):
        created = dt.datetime(2016, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
            seconds=rng.randrange(0, 9 * 365 * 86400))
        if d.username == "newbie_2026":
            created = dt.datetime(2026, 10, 30, 20, 1, 5, tzinfo=dt.timezone.utc)
        joined = max(created, guild_created) + dt.timedelta(seconds=rng.randrange(3600, 600 * 86400))
        joined = min(joined, REFERENCE - dt.timedelta(days=2, seconds=rng.randrange(86400)))
        d.id = snowflake(ms(created), seq)
        d.joined_at = discord_time(joined.replace(microsecond=rng.randrange(1000) * 1000))
        d.premium_since = None
        if "Server Booster" in d.roles:
            boosted = min(joined + dt.timedelta(days=rng.randrange(1, 200)), REFERENCE - dt.timedelta(days=1))
            d.premium_since = discord_time(boosted)

    def member_obj(d, roles_override=None):
        names = d.roles if roles_override is None else roles_override
        ids = sorted((role_ids[n] for n in names), key=int)
        user = {"id": d.id, "username": d.username, "global_name": d.global_name, "avatar": None,
                "discriminator": d.discriminator, "public_flags": 0, "bot": d.bot}
        return {"user": user, "nick": d.nick, "avatar": None, "roles": ids, "joined_at": d.joined_at,
                "premium_since": d.premium_since, "deaf": False, "mute": False, "flags": 0,
                "pending": False}

    ordered = sorted(discords, key=lambda d: int(d.id))
    now = {"roles": roles, "members": [member_obj(d) for d in ordered]}
    later_members = []
    for d in ordered:
        if d.username == "kevin_irl":
            continue  # left the server
        if d.username == "brogar":
            later_members.append(member_obj(d, ["Raider"]))  # an officer removed the Member role
        elif d.username == "grimtotem":
            later_members.append(member_obj(d, ["Officer"]))  # promoted on Discord to match in game
        else:
            later_members.append(member_obj(d))
    later = {"roles": roles, "members": later_members}
    return guild_id, now, later


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def lua_key_order(keys):
    # WoW writes a table's hash part in hash order; any fixed scramble is as realistic.
    return sorted(keys, key=lambda k: hashlib.md5(k.encode()).hexdigest())


def lua_value(v, depth):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return lua_string(v)
    tab = "\t" * depth
    lines = ["{"]
    if isinstance(v, list):
        for i, item in enumerate(v, 1):
            lines.append("%s\t%s, -- [%d]" % (tab, lua_value(item, depth + 1), i))
    else:
        for k in lua_key_order(v.keys()):
            lines.append('%s\t["%s"] = %s,' % (tab, k, lua_value(v[k], depth + 1)))
    lines.append(tab + "}")
    return "\n".join(lines)


def write_addon(chars):
    order = sorted(chars, key=lambda c: hashlib.sha1(("%s-%s" % (c.name, c.realm)).encode()).hexdigest())
    rows = []
    for c in order:
        cname, cfile, _, _ = CLASSES[c.cls]
        rows.append({
            "name": c.name, "realm": REALMS[c.realm][2], "class": cname, "classFile": cfile,
            "level": c.level, "rank": c.rank, "rankName": INGAME_RANKS[c.rank], "zone": c.zone,
            "note": c.note, "officerNote": c.onote, "isOnline": c.online, "lastOnline": last_online(c),
            "achievementPoints": c.ach,
        })
    export = int(EXPORT_TIME.timestamp())
    db = {
        "lastExportTime": export,
        "totalExports": 137,
        "lastExport": {
            "exportTime": export,
            "exportTimeISO": EXPORT_TIME.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "addonVersion": "1.2.0",
            "guildName": GUILD["name"],
            "memberCount": len(rows),
            "characters": rows,
        },
    }
    path = os.path.join(HERE, "addon", "PATTSync.lua")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\nPATTSyncDB = " + lua_value(db, 0) + "\n")


def write_expected(players, chars, discords, guild_id):
    def cref(c):
        return {"name": c.name, "realm": c.realm}

    candidates = [d for d in discords if d.guild_role and not d.bot]
    links = []
    for p in players:
        for c in p.chars:
            links.append(dict(cref(c), player=p.key,
                              discord=p.discord.username if p.discord else None, link_source=c.how if c.how != "alt_group" else "alt_note"))
    highest = {}
    for p in players:
        ranks = [c.rank for c in p.chars if c.rank in RANK_ROLE]
        highest[p.key] = RANK_ROLE[min(ranks)] if ranks else None

    def top_role(d):
        return next((r for r in GUILD_ROLES if r in d.roles), None)

    mismatches = [{"player": p.key, "discord": p.discord.username, "in_game": INGAME_RANKS[min(c.rank for c in p.chars)],
                   "discord_role": top_role(p.discord)}
                  # No guild role at all is `no_guild_role`, not a rank mismatch.
                  for p in players if p.discord and top_role(p.discord)
                  and highest[p.key] != top_role(p.discord)]
    stale_cut = REFERENCE - dt.timedelta(days=STALE_DAYS)
    fresh_logins = [c.last_login for c in chars if c.profile and c.last_login >= stale_cut]
    out = {
        "reference_time": REFERENCE.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fresh_until": (min(fresh_logins) + dt.timedelta(days=STALE_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "guild": {"name": GUILD["name"], "realm_slug": HOME_REALM, "slug": GUILD["slug"]},
        "discord_guild_id": guild_id,
        "counts": {
            "characters": len(chars),
            "profiles": sum(c.profile for c in chars),
            "profiles_missing": sum(not c.profile for c in chars),
            "unmapped_rank": sum(c.rank not in RANK_ROLE for c in chars),
            "discord_members": len(discords),
            "discord_bots": sum(d.bot for d in discords),
            "discord_users": sum(not d.bot for d in discords),
            "discord_with_guild_role": len(candidates),
            "discord_guests": sum(not d.bot and not d.guild_role for d in discords),
            "players": len(players),
            "players_with_discord": sum(p.discord is not None for p in players),
            "players_without_discord": sum(p.discord is None for p in players),
            "linked_characters": len(links),
        },
        "links": links,
        "players_without_discord": [{"player": p.key, "characters": [cref(c) for c in p.chars]}
                                    for p in players if p.discord is None],
        "issues": {
            "orphan_wow": [cref(c) for c in chars if c.player is None],
            "orphan_discord": [d.username for d in candidates if d.kind in ("orphan", "suggestion")],
            "auto_link_suggestion": [{"character": n, "discord": u, "score": round(score(n, u), 4)}
                                     for n, u in sorted(SUGGESTIONS)],
            "rank_mismatch": mismatches,
            "no_guild_role": [p.discord.username for p in players
                              if p.discord and not p.discord.guild_role],
            "stale_character": [cref(c) for c in chars if c.profile and c.last_login < stale_cut],
            "duplicate_discord": [],
        },
        "profiles_missing": [cref(c) for c in chars if not c.profile],
        "ignored": {
            "bots": [d.username for d in discords if d.bot],
            "guests": [d.username for d in discords if not d.bot and not d.guild_role
                       and not any(p.discord is d for p in players)],
        },
        "later_snapshot": {
            "file": "discord/members_later.json",
            "changes": [
                {"discord": "brogar", "change": "Member role removed (keeps Raider)"},
                {"discord": "grimtotem", "change": "Member role replaced by Officer"},
                {"discord": "kevin_irl", "change": "left the server"},
            ],
            "issues_new": {"no_guild_role": ["brogar"]},
            "issues_resolved": {"rank_mismatch": ["grimtotem"], "orphan_discord": ["kevin_irl"]},
        },
    }
    write_json("expected.json", out)
    return out


# `guild-sync demo --later`: the guild a week on (issue 19's second snapshot). One change of
# each kind the member history records, on top of the Discord pass-2 snapshot.
LATER = {
    "rename": ("Mistwhisper", "Mistwhisperer"),
    "promote": ("Quillfeather", 3),  # Initiate (4) -> Member (3)
    "leave": "Gorvash",
    "join": ("Emberlyn", 259800001, 90, 4),  # name, Blizzard id, level, rank (Initiate)
    "nick": ("kittyrawr", "Kitty Queen"),
}


def write_later(later_discord):
    """later/roster.json and later/members.json, derived from the files just written (the demo
    reuses blizzard/profiles for them: a missing profile reads as a 404)."""
    with open(os.path.join(HERE, "blizzard", "roster.json"), encoding="utf-8") as f:
        roster = json.load(f)
    members = []
    template = None
    for m in roster["members"]:
        ch = m["character"]
        if ch["name"] == LATER["leave"]:
            continue
        if ch["name"] == LATER["rename"][0]:
            ch["name"] = LATER["rename"][1]
            ch["key"] = href(char_path_of(ch["realm"]["slug"], ch["name"]), PROFILE_NS)
        if ch["name"] == LATER["promote"][0]:
            m["rank"] = LATER["promote"][1]
        if ch["realm"]["slug"] == HOME_REALM and template is None:
            template = m
        members.append(m)
    name, bid, level, rank = LATER["join"]
    joined = json.loads(json.dumps(template))
    joined["character"].update({
        "key": href(char_path_of(HOME_REALM, name), PROFILE_NS),
        "name": name, "id": bid, "level": level,
    })
    joined["rank"] = rank
    members.append(joined)
    roster["members"] = members
    write_json("later/roster.json", roster)
    doc = json.loads(json.dumps(later_discord))
    who, nick = LATER["nick"]
    for m in doc["members"]:
        if m["user"]["username"] == who:
            m["nick"] = nick
    write_json("later/members.json", doc)


def char_path_of(realm, name):
    return "/profile/wow/character/%s/%s" % (realm, name.lower())


def main():
    rng = random.Random(SEED)
    players, orphans, discords = scenarios()
    filler(rng, players, orphans, discords)
    chars = [c for p in players for c in p.chars] + orphans
    discords += guests(rng, discords, chars)
    verify(players, chars, discords)
    fill_attributes(rng, players, chars)
    write_blizzard(rng, chars)
    guild_id, now, later = discord_docs(rng, discords)
    write_json("discord/members.json", now)
    write_json("discord/members_later.json", later)
    write_later(later)
    write_addon(chars)
    exp = write_expected(players, chars, discords, guild_id)
    print(json.dumps(exp["counts"], indent=2))
    print({k: len(v) for k, v in exp["issues"].items()})


if __name__ == "__main__":
    main()
