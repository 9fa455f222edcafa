-- Discord role sync (issue 18): stored plans officers approve, runs, and every role change made.

CREATE TABLE guild_identity.role_plans (
    id           BIGSERIAL PRIMARY KEY,
    -- SHA-256 of the sorted changes: an approval is valid only while a fresh plan has this value.
    fingerprint  TEXT NOT NULL,
    plan         JSONB NOT NULL,
    summary      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    approved_at  TIMESTAMPTZ,
    approved_by  TEXT
);

CREATE TABLE guild_identity.role_runs (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('apply', 'undo')),
    plan_id       BIGINT REFERENCES guild_identity.role_plans (id) ON DELETE SET NULL,
    undoes_run_id BIGINT REFERENCES guild_identity.role_runs (id) ON DELETE SET NULL,
    status        TEXT NOT NULL CHECK (status IN ('running', 'success', 'stopped', 'refused')),
    reason        TEXT,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at  TIMESTAMPTZ
);

CREATE TABLE guild_identity.role_changes (
    id          BIGSERIAL PRIMARY KEY,
    run_id      BIGINT NOT NULL REFERENCES guild_identity.role_runs (id) ON DELETE CASCADE,
    discord_id  TEXT NOT NULL CHECK (discord_id ~ '^[0-9]{1,20}$'),
    role_name   TEXT NOT NULL,
    role_id     TEXT,
    action      TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    result      TEXT NOT NULL CHECK (result IN ('applied', 'verified', 'failed', 'not_sent')),
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX role_changes_run_idx ON guild_identity.role_changes (run_id);
