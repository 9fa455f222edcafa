-- Role sync (issue 18): when a plan's summary went to the audit channel, so the scheduler posts
-- a plan only when it differs from the last one posted; and the runs of a plan, looked up when
-- an officer approves it (an applied plan is never applied twice).

ALTER TABLE guild_identity.role_plans ADD COLUMN posted_at TIMESTAMPTZ;

CREATE INDEX role_plans_posted_idx ON guild_identity.role_plans (posted_at DESC)
    WHERE posted_at IS NOT NULL;
CREATE INDEX role_runs_plan_idx ON guild_identity.role_runs (plan_id) WHERE plan_id IS NOT NULL;
