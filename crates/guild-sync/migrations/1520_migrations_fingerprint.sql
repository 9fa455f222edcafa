-- Issue 21 (command start-up ≤ 10 ms): every command first checks that the database holds
-- exactly this binary's migrations. Comparing each row of sqlx's `_sqlx_migrations` with the
-- embedded list was the dearest statement of a command's start-up: in a fresh backend it loads
-- the catalog entries of that table, its primary key and the statement's functions (about
-- 1.5 ms of server CPU). This one-row table holds a fingerprint of `_sqlx_migrations`, kept by a
-- trigger on every change to it; reading it costs a third of that. The binary computes the same
-- fingerprint of its embedded migrations (`db::migrations_fingerprint`); any difference sends
-- the command to sqlx's migrator, which applies what is missing and refuses what it does not
-- know, as before.
--
-- The fingerprint is the SHA-256 (hex) of one entry per row in version order, joined by ',':
-- `version:checksum-in-hex` for a successful migration, `version:failed` for a failed one. An
-- empty table hashes the empty string. Only the trigger writes this table; it has no key, so
-- reading it plans no index.
CREATE TABLE common.migrations_fingerprint (
    fingerprint TEXT NOT NULL
);

CREATE FUNCTION common.refresh_migrations_fingerprint() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM common.migrations_fingerprint;
    -- The table the trigger fired on, not a name looked up on the session's search_path.
    EXECUTE format(
        $sql$
        INSERT INTO common.migrations_fingerprint (fingerprint)
        SELECT encode(sha256(convert_to(coalesce(string_agg(
                   version || ':' || CASE WHEN success THEN encode(checksum, 'hex') ELSE 'failed' END,
                   ',' ORDER BY version), ''), 'UTF8')), 'hex')
        FROM %I.%I
        $sql$,
        TG_TABLE_SCHEMA, TG_TABLE_NAME);
    RETURN NULL;
END
$$;

-- sqlx records this very migration with an INSERT after running it, in the same transaction,
-- so the trigger fills the table for the first time then.
CREATE TRIGGER migrations_fingerprint
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON _sqlx_migrations
FOR EACH STATEMENT EXECUTE FUNCTION common.refresh_migrations_fingerprint();

COMMENT ON TABLE common.migrations_fingerprint IS
    'SHA-256 of _sqlx_migrations (version:checksum per row), kept by a trigger: the command '
    'start-up check compares it with the binary''s migrations.';
