-- Organizations and access control: a session works in one organization at a time, members see
-- their own memberships, admin-only changes need an `aal2` session in the database itself, and an
-- append-only audit trail chained by hashes per organization.
SET LOCAL ROLE leadgen_owner;

-- The organization a session currently works in (the token's `org_id`); switching re-issues tokens.
ALTER TABLE app.sessions ADD COLUMN org_id uuid REFERENCES app.organizations (id) ON DELETE SET NULL;

ALTER TABLE app.organizations
    ADD COLUMN settings jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(settings) = 'object' AND octet_length(settings::text) <= 16384);

-- A user sees their own memberships in every organization (to list and switch), and the
-- organizations they belong to.
CREATE POLICY memberships_self ON app.memberships FOR SELECT
    USING (user_id = app.current_user_id());
CREATE POLICY organizations_member ON app.organizations FOR SELECT
    USING (EXISTS (SELECT 1 FROM app.memberships m
                   WHERE m.org_id = organizations.id AND m.user_id = app.current_user_id()));

-- Admin-only changes: whatever the permissive policies allow, changing memberships or the
-- organization's settings also needs the role `admin` at assurance level `aal2` in the transaction.
CREATE FUNCTION app.is_admin_aal2() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT app.current_role_name() = 'admin' AND app.current_aal() = 'aal2' $$;

CREATE POLICY memberships_admin_insert ON app.memberships AS RESTRICTIVE FOR INSERT
    WITH CHECK (app.is_admin_aal2());
CREATE POLICY memberships_admin_update ON app.memberships AS RESTRICTIVE FOR UPDATE
    USING (app.is_admin_aal2());
CREATE POLICY memberships_admin_delete ON app.memberships AS RESTRICTIVE FOR DELETE
    USING (app.is_admin_aal2());
CREATE POLICY organizations_admin_update ON app.organizations AS RESTRICTIVE FOR UPDATE
    USING (app.is_admin_aal2());
CREATE POLICY organizations_admin_delete ON app.organizations AS RESTRICTIVE FOR DELETE
    USING (app.is_admin_aal2());

-- The audit trail. Each row's hash covers its canonical content and the previous row's hash of the
-- same organization, so an edited or deleted row breaks the chain (`leadgen audit verify`).
CREATE TABLE app.audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq >= 1),
    at          timestamptz NOT NULL,
    actor_id    uuid,
    action      text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    target      text CHECK (length(target) <= 200),
    before      jsonb,
    after       jsonb,
    ip          inet,
    request_id  text CHECK (length(request_id) <= 100),
    prev_hash   bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    UNIQUE (org_id, seq)
);
ALTER TABLE app.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.audit_log FORCE ROW LEVEL SECURITY;
-- Any member's action is recorded in their organization; only admins at aal2 read the trail.
CREATE POLICY audit_log_insert ON app.audit_log FOR INSERT
    WITH CHECK (org_id = app.current_org_id());
CREATE POLICY audit_log_read ON app.audit_log FOR SELECT
    USING (org_id = app.current_org_id() AND app.is_admin_aal2());

RESET ROLE;

-- Append-only for the application: no UPDATE, no DELETE, whatever the default privileges said.
REVOKE UPDATE, DELETE, TRUNCATE ON app.audit_log FROM leadgen_app, leadgen_maintenance;

-- The last link of an organization's chain, for the next insert. Runs as the definer so a
-- non-admin's action can be chained without letting them read the trail. The caller holds the
-- organization's advisory lock, so two inserts never take the same link.
GRANT SELECT ON app.audit_log TO leadgen_auth_definer;
CREATE FUNCTION app.audit_tail(p_org uuid)
    RETURNS TABLE (seq bigint, hash bytea)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT a.seq, a.hash FROM app.audit_log a
        WHERE a.org_id = p_org AND p_org = app.current_org_id()
        ORDER BY a.seq DESC LIMIT 1
    $$;
ALTER FUNCTION app.audit_tail(uuid) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.audit_tail(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.audit_tail(uuid) TO leadgen_app;

-- Creating an organization makes its creator the first admin; the restrictive policies above would
-- refuse that membership (nobody is admin yet), so one definer function does both inserts for the
-- user in the transaction's context, and nothing else.
GRANT INSERT ON app.organizations, app.memberships TO leadgen_auth_definer;
CREATE FUNCTION app.org_create(p_id uuid, p_name text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF app.current_user_id() IS NULL THEN
            RAISE EXCEPTION 'org_create needs a user in the transaction context';
        END IF;
        INSERT INTO app.organizations (id, name) VALUES (p_id, p_name);
        INSERT INTO app.memberships (org_id, user_id, role) VALUES (p_id, app.current_user_id(), 'admin');
    END
    $$;
ALTER FUNCTION app.org_create(uuid, text) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.org_create(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.org_create(uuid, text) TO leadgen_app;
