-- The access-token key ring: signing keys added by `leadgen keys rotate-jwt`, sealed with a key
-- derived from the application key. The newest key signs; keys it replaced keep verifying until
-- every token they signed has expired. Reachable only through the definer functions below.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.jwt_keys (
    kid            text PRIMARY KEY CHECK (kid ~ '^[0-9a-f]{16}$'),
    secret_sealed  bytea NOT NULL,
    created_at     timestamptz NOT NULL,
    -- When a newer key took over signing; NULL for the current signing key.
    retired_at     timestamptz
);
ALTER TABLE app.jwt_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.jwt_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY jwt_keys_definer_only ON app.jwt_keys USING (false) WITH CHECK (false);
REVOKE ALL ON app.jwt_keys FROM leadgen_app, leadgen_maintenance;

RESET ROLE;

GRANT SELECT, INSERT, UPDATE ON app.jwt_keys TO leadgen_auth_definer;

-- Keys still useful at `p_now`: the signing key, and retired keys younger than `p_keep_secs`.
CREATE FUNCTION app.auth_jwt_keys(p_now timestamptz, p_keep_secs integer)
    RETURNS TABLE (kid text, secret_sealed bytea, created_at timestamptz, retired_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT k.kid, k.secret_sealed, k.created_at, k.retired_at FROM app.jwt_keys k
        WHERE k.retired_at IS NULL OR k.retired_at > p_now - make_interval(secs => p_keep_secs)
        ORDER BY k.retired_at IS NOT NULL, k.created_at DESC
    $$;

CREATE FUNCTION app.auth_jwt_key_add(p_kid text, p_sealed bytea, p_now timestamptz)
    RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.jwt_keys SET retired_at = p_now WHERE retired_at IS NULL;
        INSERT INTO app.jwt_keys (kid, secret_sealed, created_at) VALUES (p_kid, p_sealed, p_now);
    $$;

ALTER FUNCTION app.auth_jwt_keys(timestamptz, integer) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.auth_jwt_key_add(text, bytea, timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.auth_jwt_keys(timestamptz, integer), app.auth_jwt_key_add(text, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.auth_jwt_keys(timestamptz, integer), app.auth_jwt_key_add(text, bytea, timestamptz) TO leadgen_app;
