-- The player model: characters and Discord accounts, the players who own them, the audit trail.

CREATE TABLE guild_identity.wow_characters (
    id                 SERIAL PRIMARY KEY,
    character_name     TEXT NOT NULL,
    realm_slug         TEXT NOT NULL,
    realm_name         TEXT,
    -- Blizzard's character id survives renames and realm transfers, so db_sync matches on it first.
    blizzard_id        BIGINT UNIQUE,
    class_id           INTEGER REFERENCES guild_identity.classes (id),
    active_spec_id     INTEGER REFERENCES guild_identity.specializations (id),
    level              INTEGER,
    item_level         INTEGER,
    guild_rank_id      INTEGER REFERENCES common.guild_ranks (id) ON DELETE SET NULL,
    achievement_points INTEGER,
    last_login_at      TIMESTAMPTZ,
    profile_json       JSONB,
    last_api_sync      TIMESTAMPTZ,
    addon_note         TEXT,
    addon_officer_note TEXT,
    addon_last_sync    TIMESTAMPTZ,
    first_seen         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- NULL = in the guild. Departed characters are kept (with their links) so a return restores them.
    removed_at         TIMESTAMPTZ
);
-- One row per (name, realm), case-insensitively; also the lookup index for addon and name matching.
CREATE UNIQUE INDEX wow_characters_name_realm_key
    ON guild_identity.wow_characters (lower(character_name), lower(realm_slug));
CREATE INDEX wow_characters_in_guild_idx
    ON guild_identity.wow_characters (id) WHERE removed_at IS NULL;

CREATE TABLE guild_identity.discord_users (
    id                 SERIAL PRIMARY KEY,
    -- Snowflakes are kept as text: that is how Discord's JSON carries them.
    discord_id         TEXT NOT NULL UNIQUE CHECK (discord_id ~ '^[0-9]{1,20}$'),
    username           TEXT NOT NULL,
    display_name       TEXT,
    highest_guild_role TEXT,
    all_guild_roles    TEXT[] NOT NULL DEFAULT '{}',
    joined_server_at   TIMESTAMPTZ,
    last_sync          TIMESTAMPTZ,
    is_present         BOOLEAN NOT NULL DEFAULT TRUE,
    removed_at         TIMESTAMPTZ,
    first_seen         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX discord_users_username_lower_idx ON guild_identity.discord_users (lower(username));
CREATE INDEX discord_users_display_name_lower_idx ON guild_identity.discord_users (lower(display_name));

CREATE TABLE guild_identity.players (
    id                   SERIAL PRIMARY KEY,
    display_name         TEXT NOT NULL,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    notes                TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- One player per Discord account: the database, not only the engine, guarantees it.
    discord_user_id      INTEGER UNIQUE REFERENCES guild_identity.discord_users (id) ON DELETE SET NULL,
    website_user_id      INTEGER,
    guild_rank_id        INTEGER REFERENCES common.guild_ranks (id) ON DELETE SET NULL,
    guild_rank_source    TEXT,
    main_character_id    INTEGER REFERENCES guild_identity.wow_characters (id) ON DELETE SET NULL,
    main_spec_id         INTEGER REFERENCES guild_identity.specializations (id),
    offspec_character_id INTEGER REFERENCES guild_identity.wow_characters (id) ON DELETE SET NULL,
    offspec_spec_id      INTEGER REFERENCES guild_identity.specializations (id)
);

CREATE TABLE guild_identity.player_characters (
    id           SERIAL PRIMARY KEY,
    player_id    INTEGER NOT NULL REFERENCES guild_identity.players (id) ON DELETE CASCADE,
    -- A character belongs to at most one player.
    character_id INTEGER NOT NULL UNIQUE REFERENCES guild_identity.wow_characters (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- How the link was made: the strategy, how sure it is, and what it was based on.
    link_source  TEXT NOT NULL DEFAULT 'manual'
        CHECK (link_source IN ('exact_name', 'guild_note', 'officer_note', 'fuzzy_name', 'alt_note', 'manual')),
    confidence   TEXT NOT NULL DEFAULT 'confirmed'
        CHECK (confidence IN ('confirmed', 'high', 'medium', 'low')),
    evidence     JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX player_characters_player_idx ON guild_identity.player_characters (player_id);

CREATE TABLE guild_identity.audit_issues (
    id                SERIAL PRIMARY KEY,
    issue_type        TEXT NOT NULL,
    severity          TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    wow_character_id  INTEGER REFERENCES guild_identity.wow_characters (id) ON DELETE SET NULL,
    -- Historical name kept by the contract; it holds discord_users.id.
    discord_member_id INTEGER REFERENCES guild_identity.discord_users (id) ON DELETE SET NULL,
    player_id         INTEGER REFERENCES guild_identity.players (id) ON DELETE SET NULL,
    summary           TEXT NOT NULL,
    details           JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- SHA-256 (hex) of the issue type and the ids involved.
    issue_hash        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    notified_at       TIMESTAMPTZ,
    resolved_at       TIMESTAMPTZ,
    resolved_by       TEXT
);
-- At most one open issue per cause, enforced here so that concurrent checks cannot duplicate.
CREATE UNIQUE INDEX audit_issues_open_hash_key
    ON guild_identity.audit_issues (issue_hash) WHERE resolved_at IS NULL;
CREATE INDEX audit_issues_unnotified_idx
    ON guild_identity.audit_issues (issue_type) WHERE resolved_at IS NULL AND notified_at IS NULL;

CREATE TABLE guild_identity.sync_log (
    id                 BIGSERIAL PRIMARY KEY,
    source             TEXT NOT NULL,
    -- 'skipped' records a scheduled run that found another pipeline holding the lock.
    status             TEXT NOT NULL CHECK (status IN ('running', 'success', 'partial', 'error', 'skipped')),
    characters_found   INTEGER,
    characters_updated INTEGER,
    characters_new     INTEGER,
    characters_removed INTEGER,
    details            JSONB NOT NULL DEFAULT '{}'::jsonb,
    error_message      TEXT,
    duration_seconds   DOUBLE PRECISION,
    started_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at       TIMESTAMPTZ
);
CREATE INDEX sync_log_source_started_idx ON guild_identity.sync_log (source, started_at DESC);

-- Keep players.updated_at honest without every writer remembering to set it.
CREATE FUNCTION guild_identity.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER players_touch_updated_at BEFORE UPDATE ON guild_identity.players
    FOR EACH ROW EXECUTE FUNCTION guild_identity.touch_updated_at();
CREATE TRIGGER guild_ranks_touch_updated_at BEFORE UPDATE ON common.guild_ranks
    FOR EACH ROW EXECUTE FUNCTION guild_identity.touch_updated_at();
