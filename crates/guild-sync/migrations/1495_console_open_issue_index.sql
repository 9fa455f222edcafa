-- Issue 16 §3: the console's issue lists at 1,000 characters × 50,000 Discord members.
--
-- The open issues of one type, newest first: `/api/audit/issues?type=…`, the suggestions list
-- and the Issues page filtered by type walk it and stop after a page. Without it PostgreSQL
-- found every open issue through `audit_issues_open_hash_key`, then sorted them to keep 50
-- (EXPLAIN ANALYZE, 600 open and 20,000 resolved issues, a page of one type: 0.22 ms; with it
-- 0.06 ms, and the gap grows with the open issues). Partial: resolved issues pile up over the
-- months and no list orders them by type.
CREATE INDEX audit_issues_open_type_created_idx
    ON guild_identity.audit_issues (issue_type, created_at DESC, id DESC)
    WHERE resolved_at IS NULL;
