-- Issue 19 follow-up: the roster's batch update took 600-730 ms for 100-1,000 rows, almost all
-- of it JIT compilation. `wow_characters_synced` (1420, 1481) joined the two singleton tables
-- `battle_net_full_sync` and `addon_last_export` ON TRUE. They hold at most one row (a boolean
-- primary key checked TRUE), but PostgreSQL does not know that: a small table that was never
-- analysed is costed as ~10 pages, about 2,000 rows, so every row read through the view was
-- estimated 2,200 × 1,180 times over. A 1,000-row update was planned as 2.6 billion rows, far
-- above `jit_above_cost`, and paid 0.5-2.5 s of JIT compilation for 60 ms of work.
--
-- The same view, with each singleton read through `LIMIT 1`: the planner now estimates one row
-- per join, so estimates through the view are the row counts of `wow_characters` itself.
-- Same columns, same values.
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
LEFT JOIN (SELECT synced_at FROM guild_identity.battle_net_full_sync LIMIT 1) fs ON TRUE
LEFT JOIN (SELECT synced_at, character_ids FROM guild_identity.addon_last_export LIMIT 1) ae
    ON TRUE;
