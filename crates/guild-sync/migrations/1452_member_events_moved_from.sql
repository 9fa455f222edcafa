-- Issue 19 follow-up: a claim's `link_moved` event names the new player in `player_id` and the
-- player the character moved away from in `before->>'player_id'`. The history route lists it
-- for both; this partial index finds a player's moves-away without reading every event.
CREATE INDEX member_events_moved_from_idx
    ON guild_identity.member_events (((before ->> 'player_id')::int4))
    WHERE event_type = 'link_moved';
