-- API keys for integrations, and in-app notifications for an organization's admins.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.api_keys (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- SHA-256 of the whole key; the key itself is shown once and never stored.
    key_hash      bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    display       text NOT NULL CHECK (length(display) <= 20),
    -- A subset of the API role's permissions.
    scopes        text[] NOT NULL,
    created_by    uuid REFERENCES app.users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    last_used_ip  inet,
    -- The key that replaced this one on rotation.
    replaced_by   uuid REFERENCES app.api_keys (id) ON DELETE SET NULL,
    -- Expiry notices already sent (days before expiry: 14, 7, 1).
    notified_days integer[] NOT NULL DEFAULT '{}'
);
CREATE INDEX api_keys_org ON app.api_keys (org_id);
CREATE INDEX api_keys_expiry ON app.api_keys (expires_at) WHERE revoked_at IS NULL;
ALTER TABLE app.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_tenant ON app.api_keys
    USING (org_id = app.current_org_id())
    WITH CHECK (org_id = app.current_org_id());
-- Admin-only table: every access needs an admin at aal2.
CREATE POLICY api_keys_admin ON app.api_keys AS RESTRICTIVE
    USING (app.is_admin_aal2())
    WITH CHECK (app.is_admin_aal2());

CREATE TABLE app.notifications (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    audience    text NOT NULL CHECK (audience IN ('admins', 'members')),
    kind        text NOT NULL CHECK (length(kind) <= 100),
    message     text NOT NULL CHECK (length(message) <= 2000),
    created_at  timestamptz NOT NULL
);
CREATE INDEX notifications_org ON app.notifications (org_id, created_at);
ALTER TABLE app.notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY notifications_tenant ON app.notifications FOR SELECT
    USING (org_id = app.current_org_id()
           AND (audience = 'members' OR app.current_role_name() = 'admin'));

RESET ROLE;

GRANT SELECT, UPDATE ON app.api_keys TO leadgen_auth_definer;
GRANT SELECT ON app.memberships TO leadgen_auth_definer;
GRANT INSERT ON app.notifications TO leadgen_auth_definer;

-- The key behind a presented hash, before any tenant is known.
CREATE FUNCTION app.api_key_find(p_hash bytea)
    RETURNS TABLE (id uuid, org_id uuid, scopes text[], expires_at timestamptz, revoked_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT k.id, k.org_id, k.scopes, k.expires_at, k.revoked_at FROM app.api_keys k WHERE k.key_hash = p_hash $$;

-- Records a key's last use, at most once a minute per key.
CREATE FUNCTION app.api_key_touch(p_id uuid, p_at timestamptz, p_ip inet)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.api_keys SET last_used_at = p_at, last_used_ip = p_ip
        WHERE id = p_id AND (last_used_at IS NULL OR last_used_at < p_at - interval '1 minute')
    $$;

-- Keys that owe their organization an expiry notice now: for each live key, the smallest of the
-- thresholds 14, 7 and 1 days it has reached and not been notified for.
CREATE FUNCTION app.api_keys_due_notice(p_now timestamptz)
    RETURNS TABLE (id uuid, org_id uuid, name text, display text, expires_at timestamptz, days integer)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT k.id, k.org_id, k.name, k.display, k.expires_at, t.days
        FROM app.api_keys k
        CROSS JOIN LATERAL (
            SELECT min(d) AS days FROM unnest(ARRAY[14, 7, 1]) AS d
            WHERE k.expires_at - p_now <= make_interval(days => d) AND NOT (d = ANY (k.notified_days))
        ) t
        -- A rotated key's successor carries the notices; the old key just runs out its overlap.
        WHERE k.revoked_at IS NULL AND k.replaced_by IS NULL AND k.expires_at > p_now AND t.days IS NOT NULL
    $$;

-- Marks a notice as sent: this threshold and every larger one (a key created with 5 days left
-- gets one notice, not three).
CREATE FUNCTION app.api_key_notified(p_id uuid, p_days integer)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.api_keys SET notified_days = ARRAY(
            SELECT DISTINCT d FROM unnest(notified_days || ARRAY(SELECT x FROM unnest(ARRAY[14, 7, 1]) x WHERE x >= p_days)) d ORDER BY d)
        WHERE id = p_id
    $$;

-- Who an organization's admins are, to mail them.
CREATE FUNCTION app.org_admin_emails(p_org uuid)
    RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT u.email FROM app.memberships m JOIN app.users u ON u.id = m.user_id
          WHERE m.org_id = p_org AND m.role = 'admin' ORDER BY u.email $$;

CREATE FUNCTION app.notify(p_org uuid, p_audience text, p_kind text, p_message text, p_at timestamptz)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ INSERT INTO app.notifications (id, org_id, audience, kind, message, created_at)
          VALUES (gen_random_uuid(), p_org, p_audience, p_kind, p_message, p_at) $$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['app.api_key_find(bytea)', 'app.api_key_touch(uuid, timestamptz, inet)',
        'app.api_keys_due_notice(timestamptz)', 'app.api_key_notified(uuid, integer)',
        'app.org_admin_emails(uuid)', 'app.notify(uuid, text, text, text, timestamptz)']
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO leadgen_auth_definer', f);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO leadgen_app', f);
    END LOOP;
END
$$;
GRANT SELECT ON app.users TO leadgen_auth_definer;
