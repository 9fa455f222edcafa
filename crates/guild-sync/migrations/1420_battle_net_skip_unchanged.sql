-- Issue 21: a Battle.net sync no longer rewrites every character (each row's `last_api_sync`
-- was stamped even when nothing else changed). db_sync now skips rows whose input is the one it
-- wrote last time, and `last_api_sync` keeps its meaning — "the last successful profile fetch" —
-- the way Discord's `last_sync` does (migration 1101):
--
-- * `bnet_input_hash`: a hash of the columns and profile document the last Battle.net write
--   stored. A row whose new input hashes the same, and that is not departed, is not written.
--   The addon sync clears it when it changes a column the roster also writes (class, rank,
--   level), so the next roster sync writes the row again.
-- * `profile_fetched`: whether that last write had a fetched profile.
-- * `battle_net_full_sync.synced_at`: the transaction time of the last applied roster.
--
-- An in-guild row with `profile_fetched` and a stored `last_api_sync` older than `synced_at`
-- was in that roster (every in-guild row not in it was marked departed) with the same input,
-- so the same, fetched, profile: its last successful fetch is `synced_at`. Rows written with
-- a failed fetch, and departing rows, get the derived value fixed into `last_api_sync` first.
-- `wow_characters_synced` is the table with `last_api_sync` derived that way.
ALTER TABLE guild_identity.wow_characters
    ADD COLUMN bnet_input_hash BIGINT,
    ADD COLUMN profile_fetched BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE guild_identity.battle_net_full_sync (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    synced_at TIMESTAMPTZ NOT NULL
);

COMMENT ON COLUMN guild_identity.wow_characters.last_api_sync IS
    'Last explicit profile fetch; for in-guild rows the last roster sync may be later: '
    'read guild_identity.wow_characters_synced.last_api_sync for the meaning.';

CREATE VIEW guild_identity.wow_characters_synced AS
SELECT wc.id, wc.character_name, wc.realm_slug, wc.realm_name, wc.blizzard_id, wc.class_id,
       wc.active_spec_id, wc.level, wc.item_level, wc.guild_rank_id, wc.achievement_points,
       wc.last_login_at, wc.profile_json,
       CASE WHEN wc.removed_at IS NULL AND wc.profile_fetched AND fs.synced_at IS NOT NULL
                 AND (wc.last_api_sync IS NULL OR wc.last_api_sync < fs.synced_at)
            THEN fs.synced_at
            ELSE wc.last_api_sync
       END AS last_api_sync,
       wc.addon_note, wc.addon_officer_note, wc.addon_last_sync, wc.first_seen, wc.removed_at
FROM guild_identity.wow_characters wc
LEFT JOIN guild_identity.battle_net_full_sync fs ON TRUE;
