-- Issue 17, member claims (`/claim`): members prove their characters with Discord login, then
-- Battle.net login.

-- What a claim proved about the player: the Battle.net account (its id is the stable key, the
-- BattleTag is for people) and when. One player per Battle.net account: a second Discord
-- account claiming the same one is a conflict for an officer, never a second owner.
ALTER TABLE guild_identity.players
    ADD COLUMN battletag            TEXT CHECK (length(battletag) <= 64),
    ADD COLUMN battlenet_account_id BIGINT,
    ADD COLUMN claimed_at           TIMESTAMPTZ;
CREATE UNIQUE INDEX players_battlenet_account_key
    ON guild_identity.players (battlenet_account_id) WHERE battlenet_account_id IS NOT NULL;

-- Links a member proved by Battle.net login.
ALTER TABLE guild_identity.player_characters
    DROP CONSTRAINT player_characters_link_source_check;
ALTER TABLE guild_identity.player_characters
    ADD CONSTRAINT player_characters_link_source_check
    CHECK (link_source IN ('exact_name', 'guild_note', 'officer_note', 'display_name_part',
                           'fuzzy_name', 'alt_note', 'manual', 'battlenet_oauth'));

-- A claim's link changes go to the same action history as an officer's (officer = 'claim').
ALTER TABLE guild_identity.officer_actions DROP CONSTRAINT officer_actions_action_check;
ALTER TABLE guild_identity.officer_actions ADD CONSTRAINT officer_actions_action_check
    CHECK (action IN ('resolve_issue', 'reopen_issue', 'accept_suggestion', 'dismiss_suggestion',
                      'set_main', 'link', 'unlink', 'claim_link', 'claim_move', 'claim_unlink'));

-- The OAuth `state` nonces already used: a state is single-use, and a replay must fail even
-- after a restart. Rows older than the state's lifetime are useless and deleted as new ones
-- come in.
CREATE TABLE guild_identity.oauth_used_nonces (
    nonce   TEXT PRIMARY KEY CHECK (length(nonce) <= 64),
    used_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX oauth_used_nonces_used_at_idx ON guild_identity.oauth_used_nonces (used_at);

-- Secrets the service generates for itself (the OAuth state signing key when
-- GUILD_SYNC_SIGNING_SECRET is not set), so every process and restart signs alike.
CREATE TABLE guild_identity.service_secrets (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL CHECK (length(value) >= 32),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
