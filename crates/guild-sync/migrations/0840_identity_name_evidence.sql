-- Identity engine, issue 14: links that rest on one part of a display name listing characters
-- ("Main / Alt"), and the account's global name stored apart from what the server shows, so the
-- engine can tell a server nickname (which any member can set to anything) from the account's
-- own names.
ALTER TABLE guild_identity.player_characters
    DROP CONSTRAINT player_characters_link_source_check;
ALTER TABLE guild_identity.player_characters
    ADD CONSTRAINT player_characters_link_source_check
    CHECK (link_source IN ('exact_name', 'guild_note', 'officer_note', 'display_name_part',
                           'fuzzy_name', 'alt_note', 'manual'));

-- NULL for rows synced before this column existed: the engine then treats a display name that
-- differs from the username as a nickname (the cautious reading) until the next member sync.
ALTER TABLE guild_identity.discord_users ADD COLUMN global_name TEXT;
