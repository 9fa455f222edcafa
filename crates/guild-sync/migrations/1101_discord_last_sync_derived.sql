-- Issue 21: a full Discord sync no longer rewrites `last_sync` on every present member (at
-- 50,000 members that rewrite was most of the sync). The meaning is kept — "the last full
-- sync that saw this member" (or the last real-time event that wrote the row) — by splitting
-- it in two:
--
-- * `discord_full_sync` remembers the last *complete* full sync: when its list was taken
--   (`taken_at`) and its transaction time (`synced_at`, the value the old code wrote).
-- * `discord_users.last_sync` is written only where something happens to the row: new,
--   changed, returned, written by a real-time event, or departing (a departure first fixes
--   the derived value into the row, so a departed member keeps the last sync that saw them).
--
-- A present member whose stored `last_sync` is older than the last complete sync's `taken_at`
-- was listed by that sync (an unlisted one would have been marked departed), so that sync's
-- `synced_at` is its last confirmation. `discord_users_synced` is the table with `last_sync`
-- derived that way; read members through it.
CREATE TABLE guild_identity.discord_full_sync (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    taken_at  TIMESTAMPTZ NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL
);

COMMENT ON COLUMN guild_identity.discord_users.last_sync IS
    'Last explicit confirmation; for present members the last complete full sync may be later: '
    'read guild_identity.discord_users_synced.last_sync for the meaning.';

CREATE VIEW guild_identity.discord_users_synced AS
SELECT du.id, du.discord_id, du.username, du.display_name, du.highest_guild_role,
       du.all_guild_roles, du.joined_server_at,
       CASE WHEN du.is_present AND fs.taken_at IS NOT NULL
                 AND (du.last_sync IS NULL OR du.last_sync < fs.taken_at)
            THEN fs.synced_at
            ELSE du.last_sync
       END AS last_sync,
       du.is_present, du.removed_at, du.first_seen, du.global_name
FROM guild_identity.discord_users du
LEFT JOIN guild_identity.discord_full_sync fs ON TRUE;
