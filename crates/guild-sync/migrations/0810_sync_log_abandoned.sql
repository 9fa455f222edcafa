-- A run whose process was killed leaves its sync_log row `running`; the next run that takes
-- the pipeline lock closes it as `abandoned` (see src/db/pipeline_lock.rs).
ALTER TABLE guild_identity.sync_log DROP CONSTRAINT sync_log_status_check;
ALTER TABLE guild_identity.sync_log ADD CONSTRAINT sync_log_status_check
    CHECK (status IN ('running', 'success', 'partial', 'error', 'skipped', 'abandoned'));
