-- The operator console: operators are a principal apart from organization members. Accounts are
-- created by `leadgen operator add` (bcrypt, a mandatory TOTP factor, an optional IP allow-list);
-- sessions are short and held in their own cookie. The server's role reads and acts only through
-- the definer functions below, and each of those that acts checks a live operator session by its
-- token's hash: the database itself refuses an operator action without one.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.operators (
    id              uuid PRIMARY KEY,
    email           text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320),
    password_hash   text NOT NULL,
    totp_sealed     bytea NOT NULL,
    -- The last TOTP step used: each code works once (sign-in and every action need a new one).
    totp_last_step  bigint NOT NULL DEFAULT 0,
    -- Addresses the operator may sign in and act from; empty: any.
    allow_ips       cidr[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL,
    disabled_at     timestamptz
);

CREATE TABLE app.operator_sessions (
    id            uuid PRIMARY KEY,
    operator_id   uuid NOT NULL REFERENCES app.operators (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    -- Absolute end; the idle limit is the caller's.
    not_after     timestamptz NOT NULL,
    ip            inet,
    ended_at      timestamptz
);
CREATE INDEX operator_sessions_live ON app.operator_sessions (operator_id) WHERE ended_at IS NULL;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['operators', 'operator_sessions'] LOOP
        EXECUTE format('ALTER TABLE app.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE app.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON app.%I USING (false) WITH CHECK (false)',
                       t || '_definer_only', t);
    END LOOP;
END
$$;

-- Sign-in, step 1: what checking a password and a code needs. Unknown and disabled operators
-- return nothing (the caller spends the same bcrypt work either way).
CREATE FUNCTION app.op_login_lookup(p_email text)
    RETURNS TABLE (id uuid, password_hash text, totp_sealed bytea, allow_ips cidr[])
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT o.id, o.password_hash, o.totp_sealed, o.allow_ips FROM app.operators o
        WHERE o.email = lower(p_email) AND o.disabled_at IS NULL
    $$;

-- Uses a TOTP step of the operator: true once per step, and only for a step after the last used.
CREATE FUNCTION app.op_use_step(p_operator uuid, p_step bigint)
    RETURNS boolean
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        WITH used AS (
            UPDATE app.operators SET totp_last_step = p_step
            WHERE id = p_operator AND totp_last_step < p_step AND disabled_at IS NULL
            RETURNING 1)
        SELECT EXISTS (SELECT 1 FROM used)
    $$;

-- Sign-in, step 2: after password, code and address are checked.
CREATE FUNCTION app.op_session_start(p_operator uuid, p_session uuid, p_hash bytea,
                                     p_now timestamptz, p_not_after timestamptz, p_ip inet)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        INSERT INTO app.operator_sessions (id, operator_id, token_hash, created_at, last_seen_at,
                                           not_after, ip)
        VALUES (p_session, p_operator, p_hash, p_now, p_now, p_not_after, p_ip)
    $$;

-- The operator of a live session (not ended, not past its end, not idle longer than allowed),
-- marked as seen now; nothing when there is none.
CREATE FUNCTION app.op_session(p_hash bytea, p_now timestamptz, p_idle_secs integer)
    RETURNS TABLE (operator_id uuid, email text, totp_sealed bytea, allow_ips cidr[])
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.operator_sessions s SET last_seen_at = p_now
        FROM app.operators o
        WHERE s.token_hash = p_hash AND o.id = s.operator_id AND o.disabled_at IS NULL
          AND s.ended_at IS NULL AND s.not_after > p_now
          AND s.last_seen_at > p_now - make_interval(secs => p_idle_secs)
        RETURNING o.id, o.email, o.totp_sealed, o.allow_ips
    $$;

CREATE FUNCTION app.op_session_end(p_hash bytea, p_now timestamptz)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ UPDATE app.operator_sessions SET ended_at = p_now WHERE token_hash = p_hash AND ended_at IS NULL $$;

-- Raises unless p_hash is a live operator session; returns its operator's email (the actor).
CREATE FUNCTION app.op_require(p_hash bytea, p_now timestamptz)
    RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE who text;
    BEGIN
        SELECT o.email INTO who FROM app.operator_sessions s JOIN app.operators o ON o.id = s.operator_id
        WHERE s.token_hash = p_hash AND s.ended_at IS NULL AND s.not_after > p_now
          AND o.disabled_at IS NULL;
        IF who IS NULL THEN
            RAISE EXCEPTION 'no live operator session' USING ERRCODE = '42501';
        END IF;
        RETURN 'operator:' || who;
    END
    $$;

-- What the console shows, for a live session: open incidents with their timelines, active
-- blocks, recent backups and restore proofs, vulnerability reports awaiting triage, the
-- early-access list's size.
CREATE FUNCTION app.op_overview(p_hash bytea, p_now timestamptz)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM app.op_require(p_hash, p_now);
        RETURN jsonb_build_object(
            'incidents', COALESCE((
                SELECT jsonb_agg(jsonb_build_object(
                    'id', i.id, 'severity', i.severity, 'summary', i.summary,
                    'opened_by', i.opened_by, 'opened_at', i.opened_at,
                    'acknowledged_at', i.acknowledged_at,
                    'timeline', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                        'at', e.at, 'actor', e.actor, 'action', e.action, 'detail', e.detail)
                        ORDER BY e.at, e.id) FROM app.incident_events e WHERE e.incident_id = i.id), '[]'))
                    ORDER BY i.id DESC)
                FROM app.incidents i WHERE i.resolved_at IS NULL), '[]'),
            'blocks', COALESCE((
                SELECT jsonb_agg(jsonb_build_object(
                    'network', b.network::text, 'until', b.until, 'incident', b.incident_id)
                    ORDER BY b.created_at DESC)
                FROM app.incident_blocks b WHERE b.lifted_at IS NULL AND b.until > p_now), '[]'),
            'auth_frozen', (SELECT c.auth_frozen FROM app.incident_controls c),
            'backups', COALESCE((
                SELECT jsonb_agg(x ORDER BY x->>'started_at' DESC) FROM (
                    SELECT jsonb_build_object('kind', r.kind, 'started_at', r.started_at,
                        'ok', r.ok, 'label', r.label, 'error', r.error, 'bytes', r.size_bytes) AS x
                    FROM app.backup_runs r ORDER BY r.started_at DESC LIMIT 10) q), '[]'),
            'proofs', COALESCE((
                SELECT jsonb_agg(x ORDER BY x->>'finished_at' DESC) FROM (
                    SELECT jsonb_build_object('finished_at', p.finished_at, 'ok', p.ok,
                        'label', p.label, 'problem', (SELECT c->>'name' || ': ' || (c->>'detail')
                            FROM jsonb_array_elements(p.report->'checks') c
                            WHERE NOT (c->>'ok')::boolean LIMIT 1)) AS x
                    FROM app.restore_proofs p ORDER BY p.finished_at DESC LIMIT 5) q), '[]'),
            'vdp_untriaged', (SELECT count(*) FROM app.vdp_reports r WHERE r.triaged_at IS NULL),
            'waitlist', (SELECT count(*) FROM app.early_access)
        );
    END
    $$;

-- A block from the console, on an open incident or (p_incident NULL) on a new low-severity one
-- opened for it. Returns the incident's id. Notifies every instance.
CREATE FUNCTION app.op_block(p_hash bytea, p_now timestamptz, p_incident bigint,
                             p_network cidr, p_until timestamptz)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE actor text := app.op_require(p_hash, p_now);
            inc bigint := p_incident;
    BEGIN
        IF inc IS NULL THEN
            INSERT INTO app.incidents (severity, summary, opened_by, opened_at)
            VALUES ('low', 'Block of ' || p_network::text || ' from the operator console', actor, p_now)
            RETURNING id INTO inc;
            INSERT INTO app.incident_events (incident_id, at, actor, action, detail)
            VALUES (inc, p_now, actor, 'open', jsonb_build_object('severity', 'low'));
        ELSIF NOT EXISTS (SELECT 1 FROM app.incidents WHERE id = inc AND resolved_at IS NULL) THEN
            RAISE EXCEPTION 'incident % is not open', inc USING ERRCODE = '22023';
        END IF;
        INSERT INTO app.incident_blocks (incident_id, network, created_at, until)
        VALUES (inc, p_network, p_now, p_until);
        INSERT INTO app.incident_events (incident_id, at, actor, action, detail)
        VALUES (inc, p_now, actor, 'block',
                jsonb_build_object('network', p_network::text, 'until', extract(epoch FROM p_until)::bigint));
        PERFORM pg_notify('leadgen_incidents', inc::text);
        RETURN inc;
    END
    $$;

-- Lifts the active blocks of exactly p_network; returns how many (recorded on their incidents).
CREATE FUNCTION app.op_unblock(p_hash bytea, p_now timestamptz, p_network cidr)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE actor text := app.op_require(p_hash, p_now);
            n integer;
    BEGIN
        WITH lifted AS (
            UPDATE app.incident_blocks SET lifted_at = p_now
            WHERE network = p_network AND lifted_at IS NULL AND until > p_now
            RETURNING incident_id)
        INSERT INTO app.incident_events (incident_id, at, actor, action, detail)
        SELECT DISTINCT l.incident_id, p_now, actor, 'unblock',
               jsonb_build_object('network', p_network::text)
        FROM lifted l;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            PERFORM pg_notify('leadgen_incidents', 'unblock');
        END IF;
        RETURN n;
    END
    $$;

RESET ROLE;

REVOKE ALL ON app.operators, app.operator_sessions FROM leadgen_app, leadgen_maintenance;
GRANT SELECT, UPDATE ON app.operators TO leadgen_auth_definer;
GRANT SELECT, INSERT, UPDATE ON app.operator_sessions TO leadgen_auth_definer;
GRANT SELECT, INSERT ON app.incidents, app.incident_events TO leadgen_auth_definer;
GRANT SELECT, INSERT, UPDATE ON app.incident_blocks TO leadgen_auth_definer;
GRANT SELECT ON app.backup_runs, app.restore_proofs, app.early_access, app.vdp_reports TO leadgen_auth_definer;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app.op_login_lookup(text)',
        'app.op_use_step(uuid, bigint)',
        'app.op_session_start(uuid, uuid, bytea, timestamptz, timestamptz, inet)',
        'app.op_session(bytea, timestamptz, integer)',
        'app.op_session_end(bytea, timestamptz)',
        'app.op_require(bytea, timestamptz)',
        'app.op_overview(bytea, timestamptz)',
        'app.op_block(bytea, timestamptz, bigint, cidr, timestamptz)',
        'app.op_unblock(bytea, timestamptz, cidr)'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO leadgen_auth_definer', f);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO leadgen_app', f);
    END LOOP;
END
$$;
