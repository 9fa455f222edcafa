-- Issue 20, Discord slash commands and buttons on the audit report.

-- Keys guild-sync signs its own tokens with, one per purpose ('discord_buttons': the HMAC in a
-- report button's custom_id). Made on first use and kept in the database, so every process on
-- the same database (serve, a CLI report run) signs and verifies alike, and no setting is needed.
-- A key per purpose: rotating one (deleting its row) invalidates only that kind of token.
CREATE TABLE guild_identity.signing_keys (
    purpose    TEXT PRIMARY KEY,
    key        BYTEA NOT NULL CHECK (length(key) >= 32),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
