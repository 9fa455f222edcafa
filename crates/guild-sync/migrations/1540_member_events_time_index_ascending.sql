-- Issue 19 (event cost): the feed's time index of `member_events` was declared
-- `(occurred_at DESC, id DESC)`. Events are appended in time order, so in that index every new
-- entry landed at the *left* edge. B-tree pages split 50/50 there, and the right-edge insertion
-- fast path does not apply. After a year of syncs (1,000 syncs of 100 events) the index was
-- 5.4 MB; declared ascending it is 3.1 MB. A new entry then goes to the right edge, where the
-- fast path applies and pages split 90/10.
--
-- Every read is unchanged. The feed and the histories read newest first, which is a backward
-- scan of the same index, keyset row comparisons `(occurred_at, id) < (…)` included.
-- `member_events_player_idx` keeps its `occurred_at DESC`. Its appends land inside each
-- player's range, not at an edge, and declared ascending it was only 3 % smaller after the
-- same appends (630 → 614 kB for 20,000 events over 40 players).
DROP INDEX guild_identity.member_events_time_idx;
CREATE INDEX member_events_time_idx ON guild_identity.member_events (occurred_at, id);
