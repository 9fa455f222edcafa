-- Link candidates (issue 16): the server caches the candidate pools keyed on the data version. A
-- process can talk to several databases over its life (tests, a restored dump) whose counters
-- start alike, so each database gets a random epoch and the cache key is (epoch, version).

ALTER TABLE guild_identity.data_version
    ADD COLUMN epoch UUID NOT NULL DEFAULT gen_random_uuid();
