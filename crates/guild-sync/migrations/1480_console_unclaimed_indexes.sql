-- Issue 16 §3: the Unclaimed page at 50,000 Discord members.
--
-- The members list is ordered "with a guild role first, then by lower(username), id" over the
-- present members. Without an index in that order every request computed lower(username) for
-- all 50,000 rows and top-N sorted them (EXPLAIN ANALYZE: 35 ms per request, p99 255 ms at 16
-- clients). With it the first page is an index scan that stops after 26 rows (0.1 ms).
CREATE INDEX discord_users_unclaimed_order_idx
    ON guild_identity.discord_users ((highest_guild_role IS NULL), lower(username), id)
    WHERE is_present;

-- Each listed row's candidates are the open suggestions naming it; these let the page (and
-- the characters list's "has a candidate" order) look them up by id instead of scanning every
-- audit issue, which at 50,000 members can be tens of thousands of orphan rows.
CREATE INDEX audit_issues_open_suggestion_character_idx
    ON guild_identity.audit_issues (wow_character_id)
    WHERE issue_type = 'auto_link_suggestion' AND resolved_at IS NULL;
CREATE INDEX audit_issues_open_suggestion_member_idx
    ON guild_identity.audit_issues (discord_member_id)
    WHERE issue_type = 'auto_link_suggestion' AND resolved_at IS NULL;
