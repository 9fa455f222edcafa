-- Per-stage timings (issue 21): where a stage has them, the seconds it spent loading its
-- inputs, planning (the pure decisions) and applying the plan to the database, next to the
-- run's whole `duration_seconds`, so the console's Runs page and an officer reading the log
-- see which part of a run costs the time. NULL: the stage has no such part, or an older run.
ALTER TABLE guild_identity.sync_log
    ADD COLUMN load_seconds  DOUBLE PRECISION,
    ADD COLUMN plan_seconds  DOUBLE PRECISION,
    ADD COLUMN apply_seconds DOUBLE PRECISION;
