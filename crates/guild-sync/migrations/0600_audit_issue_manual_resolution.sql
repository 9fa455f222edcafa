-- Issue 6: the re-flagging rule for issues resolved by hand (see guild-sync-core integrity.rs).
-- An issue an officer resolved (resolved_by other than 'auto') while its cause persisted keeps
-- that cause from being re-flagged until a check run no longer sees the cause; that run stamps
-- cause_gone_at, and a cause that comes back after it opens a new issue.
ALTER TABLE guild_identity.audit_issues ADD COLUMN cause_gone_at TIMESTAMPTZ;

-- The live manual resolutions, read by every check run; small, so a partial index keeps the
-- lookup independent of how much resolved history accumulates.
CREATE INDEX audit_issues_manual_live_idx
    ON guild_identity.audit_issues (issue_hash)
    WHERE resolved_at IS NOT NULL
      AND resolved_by IS DISTINCT FROM 'auto'
      AND cause_gone_at IS NULL;
