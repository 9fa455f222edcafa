-- Schemas and reference data: the lookup tables every sync resolves foreign keys against.
-- Names are the contract of SPEC.md §3: the requirements' SQL runs against them unchanged.

CREATE SCHEMA IF NOT EXISTS guild_identity;
CREATE SCHEMA IF NOT EXISTS common;

CREATE TABLE guild_identity.roles (
    id   SERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE guild_identity.classes (
    id                SERIAL PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    -- Blizzard's official class colour, without '#'.
    color_hex         TEXT NOT NULL CHECK (color_hex ~ '^[0-9A-F]{6}$'),
    -- The roster only carries `playable_class.id`, so this is how db_sync resolves classes.
    blizzard_class_id INTEGER NOT NULL UNIQUE
);

CREATE TABLE guild_identity.specializations (
    id               SERIAL PRIMARY KEY,
    class_id         INTEGER NOT NULL REFERENCES guild_identity.classes (id),
    name             TEXT NOT NULL,
    default_role_id  INTEGER NOT NULL REFERENCES guild_identity.roles (id),
    wowhead_slug     TEXT NOT NULL,
    -- Profiles carry `active_spec.id`; NULL only for a spec whose id Blizzard has not published.
    blizzard_spec_id INTEGER UNIQUE,
    UNIQUE (class_id, name)
);

CREATE TABLE common.guild_ranks (
    id                SERIAL PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    -- Higher level = more senior (Initiate 1 ... Guild Leader 5).
    level             INTEGER NOT NULL UNIQUE,
    scheduling_weight INTEGER NOT NULL DEFAULT 0,
    description       TEXT,
    -- Blizzard's in-game rank index (0 = Guild Leader). Guilds have up to 10 indexes; an index no
    -- row claims resolves to NULL with a warning rather than guessing.
    ingame_rank_index INTEGER UNIQUE CHECK (ingame_rank_index BETWEEN 0 AND 9),
    -- The Discord role that corresponds to this rank; compared case-insensitively.
    discord_role_name TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX guild_ranks_discord_role_name_key ON common.guild_ranks (lower(discord_role_name));

INSERT INTO guild_identity.roles (name) VALUES ('Tank'), ('Healer'), ('Melee DPS'), ('Ranged DPS');

INSERT INTO guild_identity.classes (name, color_hex, blizzard_class_id) VALUES
    ('Warrior',      'C69B6D', 1),
    ('Paladin',      'F48CBA', 2),
    ('Hunter',       'AAD372', 3),
    ('Rogue',        'FFF468', 4),
    ('Priest',       'FFFFFF', 5),
    ('Death Knight', 'C41E3A', 6),
    ('Shaman',       '0070DD', 7),
    ('Mage',         '3FC7EB', 8),
    ('Warlock',      '8788EE', 9),
    ('Monk',         '00FF98', 10),
    ('Druid',        'FF7C0A', 11),
    ('Demon Hunter', 'A330C9', 12),
    ('Evoker',       '33937F', 13);

INSERT INTO guild_identity.specializations (class_id, name, default_role_id, wowhead_slug, blizzard_spec_id)
SELECT c.id, s.spec, r.id, s.slug, s.blizzard_spec_id
FROM (VALUES
    ('Warrior',      'Arms',          'Melee DPS',  'warrior/arms',               71),
    ('Warrior',      'Fury',          'Melee DPS',  'warrior/fury',               72),
    ('Warrior',      'Protection',    'Tank',       'warrior/protection',         73),
    ('Paladin',      'Holy',          'Healer',     'paladin/holy',               65),
    ('Paladin',      'Protection',    'Tank',       'paladin/protection',         66),
    ('Paladin',      'Retribution',   'Melee DPS',  'paladin/retribution',        70),
    ('Hunter',       'Beast Mastery', 'Ranged DPS', 'hunter/beast-mastery',       253),
    ('Hunter',       'Marksmanship',  'Ranged DPS', 'hunter/marksmanship',        254),
    ('Hunter',       'Survival',      'Melee DPS',  'hunter/survival',            255),
    ('Rogue',        'Assassination', 'Melee DPS',  'rogue/assassination',        259),
    ('Rogue',        'Outlaw',        'Melee DPS',  'rogue/outlaw',               260),
    ('Rogue',        'Subtlety',      'Melee DPS',  'rogue/subtlety',             261),
    ('Priest',       'Discipline',    'Healer',     'priest/discipline',          256),
    ('Priest',       'Holy',          'Healer',     'priest/holy',                257),
    ('Priest',       'Shadow',        'Ranged DPS', 'priest/shadow',              258),
    ('Death Knight', 'Blood',         'Tank',       'death-knight/blood',         250),
    ('Death Knight', 'Frost',         'Melee DPS',  'death-knight/frost',         251),
    ('Death Knight', 'Unholy',        'Melee DPS',  'death-knight/unholy',        252),
    ('Shaman',       'Elemental',     'Ranged DPS', 'shaman/elemental',           262),
    ('Shaman',       'Enhancement',   'Melee DPS',  'shaman/enhancement',         263),
    ('Shaman',       'Restoration',   'Healer',     'shaman/restoration',         264),
    ('Mage',         'Arcane',        'Ranged DPS', 'mage/arcane',                62),
    ('Mage',         'Fire',          'Ranged DPS', 'mage/fire',                  63),
    ('Mage',         'Frost',         'Ranged DPS', 'mage/frost',                 64),
    ('Warlock',      'Affliction',    'Ranged DPS', 'warlock/affliction',         265),
    ('Warlock',      'Demonology',    'Ranged DPS', 'warlock/demonology',         266),
    ('Warlock',      'Destruction',   'Ranged DPS', 'warlock/destruction',        267),
    ('Monk',         'Brewmaster',    'Tank',       'monk/brewmaster',            268),
    ('Monk',         'Windwalker',    'Melee DPS',  'monk/windwalker',            269),
    ('Monk',         'Mistweaver',    'Healer',     'monk/mistweaver',            270),
    ('Druid',        'Balance',       'Ranged DPS', 'druid/balance',              102),
    ('Druid',        'Feral',         'Melee DPS',  'druid/feral',                103),
    ('Druid',        'Guardian',      'Tank',       'druid/guardian',             104),
    ('Druid',        'Restoration',   'Healer',     'druid/restoration',          105),
    ('Demon Hunter', 'Havoc',         'Melee DPS',  'demon-hunter/havoc',         577),
    ('Demon Hunter', 'Vengeance',     'Tank',       'demon-hunter/vengeance',     581),
    -- Midnight's third Demon Hunter spec: a ranged damage dealer.
    ('Demon Hunter', 'Devourer',      'Ranged DPS', 'demon-hunter/devourer',      1480),
    ('Evoker',       'Devastation',   'Ranged DPS', 'evoker/devastation',         1467),
    ('Evoker',       'Preservation',  'Healer',     'evoker/preservation',        1468),
    ('Evoker',       'Augmentation',  'Ranged DPS', 'evoker/augmentation',        1473)
) AS s (class, spec, role, slug, blizzard_spec_id)
JOIN guild_identity.classes c ON c.name = s.class
JOIN guild_identity.roles r ON r.name = s.role;

INSERT INTO common.guild_ranks (name, level, scheduling_weight, description, ingame_rank_index, discord_role_name) VALUES
    ('Guild Leader', 5, 5, 'Runs the guild; final say on membership and loot.', 0, 'GM'),
    ('Officer',      4, 4, 'Runs raids, recruitment and the audit channel.',    1, 'Officer'),
    ('Veteran',      3, 3, 'Long-standing raider with priority for spots.',     2, 'Veteran'),
    ('Member',       2, 2, 'Full member of the guild.',                          3, 'Member'),
    ('Initiate',     1, 1, 'On trial; not yet a full member.',                   4, 'Initiate');
