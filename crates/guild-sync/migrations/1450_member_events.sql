-- Issue 19: the guild's memory. One row per change guild-sync observed and committed: joins,
-- leaves, returns, renames, realm transfers and rank changes of characters (the Battle.net
-- roster), joins, leaves, renames and role changes of Discord members (full sync and gateway),
-- and link changes (identity engine, officers, claims).
--
-- Rows are written by the same statement that makes the change (a data-modifying CTE), never
-- by a trigger: an earlier trigger-based attempt cost far more than the +10 % sync budget, and
-- a statement-level write also knows the run and the actor, which a trigger does not. So an
-- event exists exactly when its change committed; a refused or failed run leaves none.
CREATE TABLE guild_identity.member_events (
    id              BIGSERIAL PRIMARY KEY,
    event_type      TEXT NOT NULL CHECK (event_type IN (
        'joined_guild', 'left_guild', 'returned', 'renamed', 'transferred', 'rank_changed',
        'discord_joined', 'discord_left', 'discord_renamed', 'discord_roles_changed',
        'linked', 'unlinked', 'link_moved')),
    occurred_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- No foreign keys on the subjects: history outlives the rows it names (a deleted player
    -- keeps its events), and a key check per inserted event would be paid by every sync.
    character_id    INTEGER,
    discord_user_id INTEGER,
    player_id       INTEGER,
    before          JSONB,
    after           JSONB,
    -- The sync_log run that observed the change; NULL for gateway events and officers' edits.
    run_id          BIGINT,
    actor           TEXT NOT NULL CHECK (actor IN ('engine', 'officer', 'claim', 'gateway'))
);

-- The feed (newest first, paged) and retention read by time; a player's history by player,
-- character and Discord user (events recorded before a link carry no player id).
CREATE INDEX member_events_time_idx ON guild_identity.member_events (occurred_at DESC, id DESC);
CREATE INDEX member_events_player_idx ON guild_identity.member_events (player_id, occurred_at DESC)
    WHERE player_id IS NOT NULL;
CREATE INDEX member_events_character_idx ON guild_identity.member_events (character_id)
    WHERE character_id IS NOT NULL;
CREATE INDEX member_events_discord_idx ON guild_identity.member_events (discord_user_id)
    WHERE discord_user_id IS NOT NULL;
