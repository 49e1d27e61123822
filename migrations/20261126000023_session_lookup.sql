-- Every authenticated request checks that its token's session is live and reads the member's
-- organization and role: one call of this function instead of a transaction of four round trips
-- (begin, set the user, read, commit). It answers only for the session id and user of a token
-- whose signature the server has verified, which is what the sessions policy allowed before.
CREATE FUNCTION app.auth_session(p_session uuid, p_user uuid, p_now timestamptz)
    RETURNS TABLE (aal text, org_id uuid, role text, require_mfa boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.aal, m.org_id, m.role, (o.settings->>'require_mfa')::boolean
        FROM app.sessions s
        LEFT JOIN app.memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
        LEFT JOIN app.organizations o ON o.id = m.org_id
        WHERE s.id = p_session AND s.user_id = p_user AND s.revoked_at IS NULL AND s.not_after > p_now
    $$;
GRANT SELECT ON app.sessions, app.organizations TO leadgen_auth_definer;
ALTER FUNCTION app.auth_session(uuid, uuid, timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.auth_session(uuid, uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.auth_session(uuid, uuid, timestamptz) TO leadgen_app;
