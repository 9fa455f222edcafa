-- Issue 19 (event cost): the time and player indexes of `member_events` were declared with
-- `occurred_at DESC`. Events are appended in time order, so in a descending index every new
-- entry lands at the *left* edge (of the whole index, or of its player's range). B-tree splits
-- there are 50/50, and the right-edge insertion fast path does not apply. After a year of
-- syncs (1,000 syncs of 100 events) the time index was 5.4 MB against 3.1 MB declared
-- ascending. Each insert also had to descend the tree.
--
-- Declared ascending, a new entry goes to the right edge:
-- * the time index takes the fast path and splits 90/10;
-- * the player index hits PostgreSQL's "split after the new tuple" case for increasing
--   suffixes within a group.
--
-- Every read is unchanged. The feed and history read newest first, which is a backward scan
-- of the same index, keyset row comparisons `(occurred_at, id) < (…)` included.
DROP INDEX guild_identity.member_events_time_idx;
CREATE INDEX member_events_time_idx ON guild_identity.member_events (occurred_at, id);
DROP INDEX guild_identity.member_events_player_idx;
CREATE INDEX member_events_player_idx ON guild_identity.member_events (player_id, occurred_at)
    WHERE player_id IS NOT NULL;
