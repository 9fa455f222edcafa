-- Issue 21: an addon sync no longer rewrites every character the export names (each row's
-- `addon_last_sync` was stamped even when its notes, class, rank and level were the same).
-- Only rows whose values change are written; `addon_last_sync` keeps its meaning — "the last
-- applied addon export that named this character" — the way Discord's `last_sync` (1101) and
-- Battle.net's `last_api_sync` (1420) do:
--
-- * `addon_last_export` remembers the last applied export: its transaction time (`synced_at`,
--   the value the old code wrote into every row it named) and the rows it named
--   (`character_ids`). One row and one array per sync instead of a write per character.
-- * `wow_characters.addon_last_sync` is written where the row changes, and, when a later export
--   no longer names a row the previous one named, the previous export's time is fixed into
--   that row first (so dropping out of an export never loses the last time it was named).
--
-- A row the last export named was confirmed at that export's `synced_at`; any other row's
-- last confirmation is its stored value. `wow_characters_synced` now derives it that way.
CREATE TABLE guild_identity.addon_last_export (
    singleton     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    synced_at     TIMESTAMPTZ NOT NULL,
    character_ids INT[] NOT NULL
);

COMMENT ON COLUMN guild_identity.wow_characters.addon_last_sync IS
    'Last explicit addon write; the last applied export may have named the row later: '
    'read guild_identity.wow_characters_synced.addon_last_sync for the meaning.';

CREATE OR REPLACE VIEW guild_identity.wow_characters_synced AS
SELECT wc.id, wc.character_name, wc.realm_slug, wc.realm_name, wc.blizzard_id, wc.class_id,
       wc.active_spec_id, wc.level, wc.item_level, wc.guild_rank_id, wc.achievement_points,
       wc.last_login_at, wc.profile_json,
       CASE WHEN wc.removed_at IS NULL AND wc.profile_fetched AND fs.synced_at IS NOT NULL
                 AND (wc.last_api_sync IS NULL OR wc.last_api_sync < fs.synced_at)
            THEN fs.synced_at
            ELSE wc.last_api_sync
       END AS last_api_sync,
       wc.addon_note, wc.addon_officer_note,
       CASE WHEN wc.id = ANY (ae.character_ids)
                 AND (wc.addon_last_sync IS NULL OR wc.addon_last_sync < ae.synced_at)
            THEN ae.synced_at
            ELSE wc.addon_last_sync
       END AS addon_last_sync,
       wc.first_seen, wc.removed_at
FROM guild_identity.wow_characters wc
LEFT JOIN guild_identity.battle_net_full_sync fs ON TRUE
LEFT JOIN guild_identity.addon_last_export ae ON TRUE;
