-- Progressive sign-in throttling, shared by every server instance.
--
-- Failures are counted per (email, IP) pair, per email and per IP, keyed by SHA-256 digests so the
-- table holds no addresses. Past a free allowance each further failure doubles the wait, with a
-- cap per scope: the per-email cap is short (a minute) so that an attacker hammering from
-- elsewhere cannot lock the owner out for long; the pair and IP caps are long.
-- Only the definer functions below touch the table; the server's role has no access at all.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.auth_throttle (
    scope            text NOT NULL CHECK (scope IN ('pair', 'account', 'ip')),
    key              bytea NOT NULL CHECK (length(key) = 32),
    failures         integer NOT NULL CHECK (failures >= 0),
    last_failure_at  timestamptz NOT NULL,
    locked_until     timestamptz,
    PRIMARY KEY (scope, key)
);
ALTER TABLE app.auth_throttle ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.auth_throttle FORCE ROW LEVEL SECURITY;
-- No tenant or user owns these rows: nobody but the BYPASSRLS definer may see them.
CREATE POLICY auth_throttle_definer_only ON app.auth_throttle USING (false) WITH CHECK (false);
REVOKE ALL ON app.auth_throttle FROM leadgen_app, leadgen_maintenance;

RESET ROLE;

GRANT SELECT, INSERT, UPDATE, DELETE ON app.auth_throttle TO leadgen_auth_definer;

-- Seconds until every given (scope, key) is free again; 0 when none is locked.
CREATE FUNCTION app.auth_throttle_wait(p_scopes text[], p_keys bytea[], p_now timestamptz)
    RETURNS double precision
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT coalesce(max(extract(epoch FROM t.locked_until - p_now)), 0)::double precision
        FROM app.auth_throttle t
        JOIN unnest(p_scopes, p_keys) AS k(scope, key) ON t.scope = k.scope AND t.key = k.key
        WHERE t.locked_until > p_now
    $$;

-- Records one failure; past `p_free` failures within an hour, locks for 2^(n - p_free) seconds,
-- at most `p_cap_secs`.
CREATE FUNCTION app.auth_throttle_fail(p_scope text, p_key bytea, p_now timestamptz, p_free integer, p_cap_secs integer)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        n integer;
    BEGIN
        INSERT INTO app.auth_throttle AS t (scope, key, failures, last_failure_at)
        VALUES (p_scope, p_key, 1, p_now)
        ON CONFLICT (scope, key) DO UPDATE SET
            failures = CASE WHEN t.last_failure_at < p_now - interval '1 hour' THEN 1 ELSE t.failures + 1 END,
            last_failure_at = p_now
        RETURNING failures INTO n;
        IF n >= p_free THEN
            UPDATE app.auth_throttle
            SET locked_until = p_now + make_interval(secs => least(p_cap_secs, power(2, least(n - p_free, 30))))
            WHERE scope = p_scope AND key = p_key;
        END IF;
    END
    $$;

-- A successful sign-in clears the pair and account counters (never the IP's).
CREATE FUNCTION app.auth_throttle_clear(p_pair bytea, p_account bytea)
    RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        DELETE FROM app.auth_throttle
        WHERE (scope = 'pair' AND key = p_pair) OR (scope = 'account' AND key = p_account)
    $$;

ALTER FUNCTION app.auth_throttle_wait(text[], bytea[], timestamptz) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.auth_throttle_fail(text, bytea, timestamptz, integer, integer) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.auth_throttle_clear(bytea, bytea) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.auth_throttle_wait(text[], bytea[], timestamptz),
    app.auth_throttle_fail(text, bytea, timestamptz, integer, integer),
    app.auth_throttle_clear(bytea, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.auth_throttle_wait(text[], bytea[], timestamptz),
    app.auth_throttle_fail(text, bytea, timestamptz, integer, integer),
    app.auth_throttle_clear(bytea, bytea) TO leadgen_app;
