-- Issue 19 (event cost): the character and Discord-user indexes of `member_events` only serve
-- a player's history for events recorded before a link, which carry no player id
-- (`member_events::player_history` reads them with `player_id IS NULL`). Events with a player
-- id are found by `member_events_player_idx`. So these two indexes now hold only the events
-- without a player: an event about a linked character or member (most of a running guild's
-- events) updates one secondary index fewer when a sync writes it.
DROP INDEX guild_identity.member_events_character_idx;
DROP INDEX guild_identity.member_events_discord_idx;
CREATE INDEX member_events_unlinked_character_idx ON guild_identity.member_events (character_id)
    WHERE player_id IS NULL AND character_id IS NOT NULL;
CREATE INDEX member_events_unlinked_discord_idx ON guild_identity.member_events (discord_user_id)
    WHERE player_id IS NULL AND discord_user_id IS NOT NULL;
