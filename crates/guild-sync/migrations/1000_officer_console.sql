-- Issue 16, officer console (review API).

-- Every officer action: who, when, what, why. player_id lets a player's page show its history;
-- target names the row acted on ('audit_issue:12', 'player:3'), details holds the rest.
CREATE TABLE guild_identity.officer_actions (
    id         BIGSERIAL PRIMARY KEY,
    officer    TEXT NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('resolve_issue', 'reopen_issue',
                   'accept_suggestion', 'dismiss_suggestion', 'set_main', 'link', 'unlink')),
    target     TEXT NOT NULL,
    player_id  INTEGER REFERENCES guild_identity.players (id) ON DELETE SET NULL,
    note       TEXT CHECK (length(note) <= 2000),
    details    JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX officer_actions_player_idx ON guild_identity.officer_actions (player_id, id DESC)
    WHERE player_id IS NOT NULL;

-- Pairs an officer said are not the same person: the identity engine never suggests them again.
CREATE TABLE guild_identity.dismissed_suggestions (
    wow_character_id INTEGER NOT NULL REFERENCES guild_identity.wow_characters (id) ON DELETE CASCADE,
    discord_user_id  INTEGER NOT NULL REFERENCES guild_identity.discord_users (id) ON DELETE CASCADE,
    dismissed_by     TEXT NOT NULL,
    dismissed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (wow_character_id, discord_user_id)
);

-- The officer's note when resolving an issue by hand.
ALTER TABLE guild_identity.audit_issues ADD COLUMN resolution_note TEXT
    CHECK (length(resolution_note) <= 2000);

-- The list routes' newest-first paging and per-type counts.
CREATE INDEX audit_issues_created_idx ON guild_identity.audit_issues (created_at DESC, id DESC);

-- The data version behind the list routes' ETags: one row, bumped once per statement that
-- changes a table the lists read. Cheap to read (one row), and a statement-level trigger costs
-- one update per statement, not per row, so the bulk sync writes pay almost nothing.
CREATE TABLE guild_identity.data_version (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    version   BIGINT NOT NULL
);
INSERT INTO guild_identity.data_version (version) VALUES (1);

CREATE FUNCTION guild_identity.bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE guild_identity.data_version SET version = version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER wow_characters_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON guild_identity.wow_characters FOR EACH STATEMENT EXECUTE FUNCTION guild_identity.bump_data_version();
CREATE TRIGGER discord_users_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON guild_identity.discord_users FOR EACH STATEMENT EXECUTE FUNCTION guild_identity.bump_data_version();
CREATE TRIGGER players_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON guild_identity.players FOR EACH STATEMENT EXECUTE FUNCTION guild_identity.bump_data_version();
CREATE TRIGGER player_characters_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON guild_identity.player_characters FOR EACH STATEMENT EXECUTE FUNCTION guild_identity.bump_data_version();
CREATE TRIGGER audit_issues_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON guild_identity.audit_issues FOR EACH STATEMENT EXECUTE FUNCTION guild_identity.bump_data_version();
CREATE TRIGGER officer_actions_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON guild_identity.officer_actions FOR EACH STATEMENT EXECUTE FUNCTION guild_identity.bump_data_version();
CREATE TRIGGER dismissed_suggestions_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON guild_identity.dismissed_suggestions FOR EACH STATEMENT EXECUTE FUNCTION guild_identity.bump_data_version();
