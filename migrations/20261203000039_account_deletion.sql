-- Account deletion, and an audit chain whose personal fields can be erased without breaking it.
--
-- Rows of hash version 2 commit to their personal fields (actor, target, before, after, IP)
-- through `personal_sha256`, a SHA-256 over a random per-row salt and those fields, instead of
-- the fields themselves. While the salt is there, `leadgen audit verify` recomputes the digest
-- from the fields (any edit shows); pseudonymising a row replaces the fields and drops the salt,
-- and the chain still verifies, since the digest it covers is unchanged. Without the salt the
-- digest cannot be used to confirm a guess of what the fields held. A pseudonymisation is
-- itself a row of the chain (`account.pseudonymised`, naming the rows), and verify refuses a
-- row without its salt that no such row declares.
SET LOCAL ROLE leadgen_owner;

ALTER TABLE app.users
    ADD COLUMN deletion_requested_at timestamptz,
    ADD COLUMN deletion_due_at timestamptz,
    ADD CONSTRAINT users_deletion_pair CHECK ((deletion_requested_at IS NULL) = (deletion_due_at IS NULL));
CREATE INDEX users_deletion_due ON app.users (deletion_due_at) WHERE deletion_due_at IS NOT NULL;

ALTER TABLE app.audit_log
    ADD COLUMN hash_version smallint NOT NULL DEFAULT 1 CHECK (hash_version IN (1, 2)),
    ADD COLUMN personal_sha256 bytea CHECK (length(personal_sha256) = 32),
    ADD COLUMN personal_salt bytea CHECK (length(personal_salt) = 16),
    ADD COLUMN pseudonymised_at timestamptz,
    ADD CONSTRAINT audit_log_v2_digest CHECK (hash_version = 1 OR personal_sha256 IS NOT NULL),
    ADD CONSTRAINT audit_log_v2_salt CHECK (
        hash_version = 1 OR (personal_salt IS NULL) = (pseudonymised_at IS NOT NULL));
-- The rows one actor wrote, for pseudonymisation.
CREATE INDEX audit_log_actor ON app.audit_log (actor_id) WHERE actor_id IS NOT NULL;

RESET ROLE;

-- The data-lifecycle jobs (maintenance role) may replace personal fields, never what the chain
-- commits to (sequence, time, action, digest, hashes).
GRANT UPDATE (actor_id, target, before, after, ip, request_id, personal_salt, pseudonymised_at)
    ON app.audit_log TO leadgen_maintenance;

-- What stands in the way of deleting the signed-in user's account: organizations where they
-- are the last admin while others are members (those must get another admin first), and the
-- organizations they are alone in (deleted with the account).
CREATE FUNCTION app.account_deletion_blockers()
    RETURNS TABLE (org_id uuid, name text, members bigint, other_admins bigint, is_admin boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT o.id, o.name,
               (SELECT count(*) FROM app.memberships x WHERE x.org_id = o.id),
               (SELECT count(*) FROM app.memberships x
                WHERE x.org_id = o.id AND x.role = 'admin' AND x.user_id <> m.user_id),
               m.role = 'admin'
        FROM app.memberships m JOIN app.organizations o ON o.id = m.org_id
        WHERE m.user_id = app.current_user_id()
        ORDER BY o.name, o.id
    $$;
ALTER FUNCTION app.account_deletion_blockers() OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.account_deletion_blockers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.account_deletion_blockers() TO leadgen_app;
GRANT SELECT ON app.memberships, app.organizations TO leadgen_auth_definer;
