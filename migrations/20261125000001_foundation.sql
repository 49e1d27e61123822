-- Foundation: database roles, the `app` schema, tenant context functions and the first tenant
-- tables (organizations, users, memberships), each under forced row-level security.
--
-- Roles are cluster-wide and several LeadGen databases may share one cluster, so their creation
-- tolerates a concurrent or earlier creation.
DO $$
BEGIN
    BEGIN
        CREATE ROLE leadgen_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        -- What the server logs in as: owns nothing, cannot bypass row-level security.
        CREATE ROLE leadgen_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        -- Cross-tenant jobs only (retention, backups, key rotation).
        CREATE ROLE leadgen_maintenance LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS NOINHERIT;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;

CREATE SCHEMA app AUTHORIZATION leadgen_owner;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO leadgen_app, leadgen_maintenance;
-- The readiness check compares applied migrations with the binary's list.
GRANT SELECT ON public._sqlx_migrations TO leadgen_app;

-- Everything below is created by, and so owned by, leadgen_owner.
SET LOCAL ROLE leadgen_owner;

ALTER DEFAULT PRIVILEGES FOR ROLE leadgen_owner IN SCHEMA app
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO leadgen_app, leadgen_maintenance;

-- Tenant context, set per transaction by TenantTx. An unset or empty setting yields NULL, and
-- `col = NULL` is never true, so a transaction without context sees no tenant rows.
CREATE FUNCTION app.current_org_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;

CREATE FUNCTION app.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

CREATE FUNCTION app.current_role_name() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.role', true), '') $$;

CREATE FUNCTION app.current_aal() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.aal', true), '') $$;

CREATE TABLE app.organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app.organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY organizations_tenant ON app.organizations
    USING (id = app.current_org_id())
    WITH CHECK (id = app.current_org_id());

-- Minimal identity record; the identity capability extends it (credentials, factors, sessions).
CREATE TABLE app.users (
    id          uuid PRIMARY KEY,
    -- Normalised (lower-case) address; unique across the installation.
    email       text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320),
    display_name text CHECK (length(display_name) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.users FORCE ROW LEVEL SECURITY;

CREATE TABLE app.memberships (
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('admin', 'manager', 'user', 'api')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON app.memberships (user_id);
ALTER TABLE app.memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY memberships_tenant ON app.memberships
    USING (org_id = app.current_org_id())
    WITH CHECK (org_id = app.current_org_id());

-- A user is visible to themself and to the organization they are a member of; a principal may
-- only create or change their own user row.
CREATE POLICY users_self_or_member ON app.users
    USING (
        id = app.current_user_id()
        OR EXISTS (
            SELECT 1 FROM app.memberships m
            WHERE m.user_id = users.id AND m.org_id = app.current_org_id()
        )
    )
    WITH CHECK (id = app.current_user_id());

RESET ROLE;
