-- Issue 6 (speed of a check run): what an open issue says is fingerprinted in content_hash
-- (guild-sync-core Finding::content_hash), so a run compares one number per open issue instead
-- of loading and decoding every summary and details document. Rows without one (written before
-- this column existed, or by another writer) are refreshed by the next check run.
ALTER TABLE guild_identity.audit_issues ADD COLUMN content_hash BIGINT;

-- Every new issue paid for this index, and nothing used it: the reporter's query reads
-- "unresolved and (everything or not yet notified)", which a partial index on
-- notified_at IS NULL cannot serve.
DROP INDEX guild_identity.audit_issues_unnotified_idx;
