-- Incident response. An operator opens an incident (`leadgen incident open`) and acts through
-- it: blocks at the WAF, sessions revoked, authentication frozen, keys rotated. Every action is
-- a row of the incident's timeline (and of the platform's audit chain), and a NOTIFY on
-- `leadgen_incidents` makes every server instance apply it at once (each also re-reads every few
-- seconds, in case a notification was missed). Operators' data: only definer functions read it.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.incidents (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    severity         text NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    summary          text NOT NULL CHECK (length(summary) BETWEEN 1 AND 2000),
    opened_by        text NOT NULL CHECK (length(opened_by) BETWEEN 1 AND 200),
    opened_at        timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  text CHECK (length(acknowledged_by) <= 200),
    resolved_at      timestamptz,
    resolution       text CHECK (length(resolution) <= 4000),
    -- When the alert about it last went out (NULL: not yet), so that exactly one instance sends
    -- each alert and a high one unacknowledged is sent again after 15 minutes.
    alerted_at       timestamptz,
    alerts_sent      integer NOT NULL DEFAULT 0
);

CREATE TABLE app.incident_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES app.incidents (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL,
    actor        text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action       text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX incident_events_timeline ON app.incident_events (incident_id, at);

-- Addresses and networks refused at the WAF until a time.
CREATE TABLE app.incident_blocks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES app.incidents (id) ON DELETE CASCADE,
    network      cidr NOT NULL,
    created_at   timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    lifted_at    timestamptz
);
CREATE INDEX incident_blocks_active ON app.incident_blocks (until) WHERE lifted_at IS NULL;

-- The installation's emergency switches: one row.
CREATE TABLE app.incident_controls (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    auth_frozen  boolean NOT NULL DEFAULT false,
    frozen_by    bigint REFERENCES app.incidents (id),
    changed_at   timestamptz
);
INSERT INTO app.incident_controls DEFAULT VALUES;

-- A JWT signing key revoked in an incident (presumed leaked) verifies nothing, not even tokens
-- still inside their lifetime; a plain rotation only retires the key.
ALTER TABLE app.jwt_keys ADD COLUMN revoked_at timestamptz;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['incidents', 'incident_events', 'incident_blocks', 'incident_controls'] LOOP
        EXECUTE format('ALTER TABLE app.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE app.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON app.%I USING (false) WITH CHECK (false)',
                       t || '_definer_only', t);
    END LOOP;
END
$$;

-- What every instance enforces: the networks blocked now, and whether authentication is frozen.
CREATE FUNCTION app.incident_state(p_now timestamptz)
    RETURNS TABLE (network cidr, until timestamptz, auth_frozen boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT b.network, b.until, c.auth_frozen
        FROM app.incident_controls c
        LEFT JOIN app.incident_blocks b ON b.lifted_at IS NULL AND b.until > p_now
    $$;

-- Claims the incident alerts due now: an incident never alerted, or a high-severity one still
-- unacknowledged and unresolved `p_realert_secs` after its last alert. The row lock and the
-- update make exactly one instance send each.
CREATE FUNCTION app.incident_alerts_due(p_now timestamptz, p_realert_secs integer)
    RETURNS TABLE (id bigint, severity text, summary text, opened_by text, alerts_sent integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.incidents i
        SET alerted_at = p_now, alerts_sent = i.alerts_sent + 1
        FROM (
            SELECT d.id FROM app.incidents d
            WHERE d.resolved_at IS NULL
              AND (d.alerted_at IS NULL
                   OR (d.severity = 'high' AND d.acknowledged_at IS NULL
                       AND d.alerted_at <= p_now - make_interval(secs => p_realert_secs)))
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE i.id = due.id
        RETURNING i.id, i.severity, i.summary, i.opened_by, i.alerts_sent
    $$;

-- When the first stored key was created (revoked ones included): the key derived from the
-- application key signed before it, and stops verifying once that is a token lifetime ago.
CREATE FUNCTION app.auth_jwt_first_key()
    RETURNS timestamptz
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT min(k.created_at) FROM app.jwt_keys k $$;

RESET ROLE;

-- Keys revoked in an incident are never loaded again.
CREATE OR REPLACE FUNCTION app.auth_jwt_keys(p_now timestamptz, p_keep_secs integer)
    RETURNS TABLE (kid text, secret_sealed bytea, created_at timestamptz, retired_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT k.kid, k.secret_sealed, k.created_at, k.retired_at FROM app.jwt_keys k
        WHERE k.revoked_at IS NULL
          AND (k.retired_at IS NULL OR k.retired_at > p_now - make_interval(secs => p_keep_secs))
        ORDER BY k.retired_at IS NOT NULL, k.created_at DESC
    $$;


REVOKE ALL ON app.incidents, app.incident_events, app.incident_blocks, app.incident_controls
    FROM leadgen_app, leadgen_maintenance;
GRANT SELECT ON app.incident_blocks, app.incident_controls TO leadgen_auth_definer;
GRANT SELECT, UPDATE ON app.incidents TO leadgen_auth_definer;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app.incident_state(timestamptz)',
        'app.incident_alerts_due(timestamptz, integer)',
        'app.auth_jwt_first_key()'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO leadgen_auth_definer', f);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO leadgen_app', f);
    END LOOP;
END
$$;
