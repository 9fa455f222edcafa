-- Issue 20: the report buttons' key joins the claims' generated secrets (migration 1460's
-- service_secrets, made alongside 1470's signing_keys): one table for the keys the service makes
-- for itself. A key already made keeps working (moved, same name), so buttons on reports already
-- posted still verify.
INSERT INTO guild_identity.service_secrets (name, value, created_at)
SELECT purpose, key, created_at FROM guild_identity.signing_keys
ON CONFLICT (name) DO NOTHING;

DROP TABLE guild_identity.signing_keys;
