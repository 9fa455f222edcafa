-- Issue 21: a Discord full sync no longer sends and compares every member's seven columns.
-- Each row keeps the fingerprint of the member as last written (`DiscordUserUpsert::fingerprint`
-- in Rust: username, display name, global name, highest rank role, rank roles, join time). A
-- full sync first sends (discord_id, fingerprint) pairs only; the full columns go to the upsert
-- for new, departed, or re-written members and for those whose fingerprint differs.
--
-- NULL means "not known": such a row is compared in full once and its fingerprint filled in.
-- Anything that rewrites these columns outside `discord_users::upsert` must set it to NULL.
ALTER TABLE guild_identity.discord_users ADD COLUMN content_fingerprint INT8;

COMMENT ON COLUMN guild_identity.discord_users.content_fingerprint IS
    'Fingerprint of the synced columns as last written by a Discord sync (computed in Rust); '
    'NULL when unknown. Only a shortcut: a differing value makes the sync compare in full.';
