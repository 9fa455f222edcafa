-- The guild's memory (issue 19): one row per change to a member, written by statement-level
-- triggers over the statement's transition tables, so every event is produced by the very
-- statement (and transaction) that made the change — set-based, never a query per row — and a
-- rolled-back (refused or failed) sync leaves none. Each trigger compares before and after, so an
-- idempotent re-run, which rewrites rows with the same values, writes none either.
--
-- Transition tables carry no statistics: the planner guessed a nested loop joining the old and
-- new rows of a 3,000-row update (9 million comparisons, seconds). The update triggers turn nested
-- loops off so the join is hashed.
--
-- Who caused a change and which run observed it are transaction-local settings
-- (`guild_sync.actor`, `guild_sync.run_id`, set with set_config(..., true) by the writer); a
-- writer that sets nothing is the engine.

CREATE TABLE guild_identity.member_events (
    id              BIGSERIAL PRIMARY KEY,
    event_type      TEXT NOT NULL CHECK (event_type IN (
        'joined_guild', 'left_guild', 'returned', 'renamed', 'transferred', 'rank_changed',
        'discord_joined', 'discord_left', 'discord_renamed', 'discord_roles_changed',
        'linked', 'unlinked', 'link_moved')),
    occurred_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    character_id    INTEGER REFERENCES guild_identity.wow_characters (id) ON DELETE SET NULL,
    discord_user_id INTEGER REFERENCES guild_identity.discord_users (id) ON DELETE SET NULL,
    player_id       INTEGER REFERENCES guild_identity.players (id) ON DELETE SET NULL,
    before          JSONB,
    after           JSONB,
    run_id          BIGINT REFERENCES guild_identity.sync_log (id) ON DELETE SET NULL,
    actor           TEXT NOT NULL CHECK (actor IN ('engine', 'officer', 'claim', 'gateway'))
);
-- The feed reads newest first, the history per player, the retention purge by time.
CREATE INDEX member_events_time_idx ON guild_identity.member_events (occurred_at DESC, id DESC);
CREATE INDEX member_events_player_idx
    ON guild_identity.member_events (player_id, occurred_at DESC, id DESC) WHERE player_id IS NOT NULL;
CREATE INDEX member_events_type_time_idx
    ON guild_identity.member_events (event_type, occurred_at DESC);
CREATE INDEX member_events_character_idx
    ON guild_identity.member_events (character_id) WHERE character_id IS NOT NULL;
CREATE INDEX member_events_discord_user_idx
    ON guild_identity.member_events (discord_user_id) WHERE discord_user_id IS NOT NULL;

CREATE FUNCTION guild_identity.event_actor() RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT COALESCE(NULLIF(current_setting('guild_sync.actor', true), ''), 'engine')
$$;
CREATE FUNCTION guild_identity.event_run() RETURNS BIGINT LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('guild_sync.run_id', true), '')::bigint
$$;

-- Characters: joins, leaves, returns and rank changes. Renames and transfers are written by
-- db_sync itself, because a rename passes through a placeholder name mid-transaction.
CREATE FUNCTION guild_identity.wow_characters_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO guild_identity.member_events
        (event_type, character_id, after, run_id, actor)
    SELECT 'joined_guild', n.id,
           jsonb_build_object('name', n.character_name, 'realm', n.realm_slug,
                              'rank_id', n.guild_rank_id),
           guild_identity.event_run(), guild_identity.event_actor()
    FROM new_rows n
    WHERE n.removed_at IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER wow_characters_events_insert AFTER INSERT ON guild_identity.wow_characters
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION guild_identity.wow_characters_inserted();

CREATE FUNCTION guild_identity.wow_characters_updated() RETURNS trigger LANGUAGE plpgsql
    SET enable_nestloop = off AS $$
BEGIN
    INSERT INTO guild_identity.member_events
        (event_type, character_id, player_id, before, after, run_id, actor)
    SELECT e.event_type, n.id, pc.player_id, e.before, e.after,
           guild_identity.event_run(), guild_identity.event_actor()
    FROM old_rows o
    JOIN new_rows n ON n.id = o.id
    LEFT JOIN guild_identity.player_characters pc ON pc.character_id = n.id
    LEFT JOIN common.guild_ranks ro ON ro.id = o.guild_rank_id
    LEFT JOIN common.guild_ranks rn ON rn.id = n.guild_rank_id
    CROSS JOIN LATERAL (
        SELECT 'left_guild' AS event_type,
               jsonb_build_object('name', o.character_name, 'realm', o.realm_slug,
                                  'rank', ro.name) AS before,
               NULL::jsonb AS after
        WHERE o.removed_at IS NULL AND n.removed_at IS NOT NULL
        UNION ALL
        SELECT 'returned', jsonb_build_object('removed_at', o.removed_at),
               jsonb_build_object('name', n.character_name, 'realm', n.realm_slug,
                                  'rank', rn.name)
        WHERE o.removed_at IS NOT NULL AND n.removed_at IS NULL
        UNION ALL
        -- Only a rank change of a member who stays: a return's new rank is part of the return.
        SELECT 'rank_changed',
               jsonb_build_object('rank_id', ro.id, 'rank', ro.name, 'level', ro.level),
               jsonb_build_object('rank_id', rn.id, 'rank', rn.name, 'level', rn.level,
                                  'promoted', COALESCE(rn.level > ro.level, rn.level IS NOT NULL))
        WHERE o.removed_at IS NULL AND n.removed_at IS NULL
          AND o.guild_rank_id IS DISTINCT FROM n.guild_rank_id
    ) e;
    RETURN NULL;
END $$;
CREATE TRIGGER wow_characters_events_update AFTER UPDATE ON guild_identity.wow_characters
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION guild_identity.wow_characters_updated();

-- Discord members: joins (new or back), leaves, renames, role changes.
CREATE FUNCTION guild_identity.discord_users_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO guild_identity.member_events
        (event_type, discord_user_id, after, run_id, actor)
    SELECT 'discord_joined', n.id,
           jsonb_build_object('username', n.username, 'display_name', n.display_name,
                              'roles', to_jsonb(n.all_guild_roles)),
           guild_identity.event_run(), guild_identity.event_actor()
    FROM new_rows n
    WHERE n.is_present;
    RETURN NULL;
END $$;
CREATE TRIGGER discord_users_events_insert AFTER INSERT ON guild_identity.discord_users
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION guild_identity.discord_users_inserted();

CREATE FUNCTION guild_identity.discord_users_updated() RETURNS trigger LANGUAGE plpgsql
    SET enable_nestloop = off AS $$
BEGIN
    INSERT INTO guild_identity.member_events
        (event_type, discord_user_id, player_id, before, after, run_id, actor)
    SELECT e.event_type, n.id, p.id, e.before, e.after,
           guild_identity.event_run(), guild_identity.event_actor()
    FROM old_rows o
    JOIN new_rows n ON n.id = o.id
    LEFT JOIN guild_identity.players p ON p.discord_user_id = n.id
    CROSS JOIN LATERAL (
        SELECT 'discord_left' AS event_type,
               jsonb_build_object('username', o.username, 'display_name', o.display_name,
                                  'roles', to_jsonb(o.all_guild_roles)) AS before,
               NULL::jsonb AS after
        WHERE o.is_present AND NOT n.is_present
        UNION ALL
        SELECT 'discord_joined', NULL,
               jsonb_build_object('username', n.username, 'display_name', n.display_name,
                                  'roles', to_jsonb(n.all_guild_roles))
        WHERE NOT o.is_present AND n.is_present
        UNION ALL
        SELECT 'discord_renamed',
               jsonb_build_object('username', o.username, 'display_name', o.display_name),
               jsonb_build_object('username', n.username, 'display_name', n.display_name)
        WHERE (o.username, o.display_name) IS DISTINCT FROM (n.username, n.display_name)
        UNION ALL
        SELECT 'discord_roles_changed',
               jsonb_build_object('roles', to_jsonb(o.all_guild_roles)),
               jsonb_build_object('roles', to_jsonb(n.all_guild_roles))
        WHERE o.all_guild_roles IS DISTINCT FROM n.all_guild_roles
    ) e;
    RETURN NULL;
END $$;
CREATE TRIGGER discord_users_events_update AFTER UPDATE ON guild_identity.discord_users
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION guild_identity.discord_users_updated();

-- Links: made, removed, moved to another player.
CREATE FUNCTION guild_identity.player_characters_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO guild_identity.member_events
        (event_type, character_id, player_id, after, run_id, actor)
    SELECT 'linked', n.character_id, n.player_id,
           jsonb_build_object('link_source', n.link_source, 'confidence', n.confidence),
           guild_identity.event_run(), guild_identity.event_actor()
    FROM new_rows n;
    RETURN NULL;
END $$;
CREATE TRIGGER player_characters_events_insert AFTER INSERT ON guild_identity.player_characters
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION guild_identity.player_characters_inserted();

CREATE FUNCTION guild_identity.player_characters_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A player deleted with its links (ON DELETE CASCADE) is gone: the event keeps its id in
    -- `before` rather than a dangling reference.
    INSERT INTO guild_identity.member_events
        (event_type, character_id, player_id, before, run_id, actor)
    SELECT 'unlinked', o.character_id, p.id,
           jsonb_build_object('player_id', o.player_id, 'link_source', o.link_source,
                              'confidence', o.confidence),
           guild_identity.event_run(), guild_identity.event_actor()
    FROM old_rows o
    LEFT JOIN guild_identity.players p ON p.id = o.player_id
    WHERE EXISTS (SELECT 1 FROM guild_identity.wow_characters wc WHERE wc.id = o.character_id);
    RETURN NULL;
END $$;
CREATE TRIGGER player_characters_events_delete AFTER DELETE ON guild_identity.player_characters
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION guild_identity.player_characters_deleted();

CREATE FUNCTION guild_identity.player_characters_updated() RETURNS trigger LANGUAGE plpgsql
    SET enable_nestloop = off AS $$
BEGIN
    INSERT INTO guild_identity.member_events
        (event_type, character_id, player_id, before, after, run_id, actor)
    SELECT 'link_moved', n.character_id, n.player_id,
           jsonb_build_object('player_id', o.player_id),
           jsonb_build_object('player_id', n.player_id, 'link_source', n.link_source),
           guild_identity.event_run(), guild_identity.event_actor()
    FROM old_rows o
    JOIN new_rows n ON n.id = o.id
    WHERE o.player_id IS DISTINCT FROM n.player_id;
    RETURN NULL;
END $$;
CREATE TRIGGER player_characters_events_update AFTER UPDATE ON guild_identity.player_characters
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION guild_identity.player_characters_updated();
