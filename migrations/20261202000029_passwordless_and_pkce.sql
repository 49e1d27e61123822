-- Supabase clients sign in by mailed link or code, confirm it is still them before a password
-- change (a mailed nonce), and use the PKCE flow: the browser comes back to the application
-- with a short-lived authorization code that only the holder of the code verifier can exchange
-- for a session. Mailed secrets stay hashed like the other one-time tokens.

SET LOCAL ROLE leadgen_owner;

ALTER TABLE app.one_time_tokens DROP CONSTRAINT one_time_tokens_purpose_check;
ALTER TABLE app.one_time_tokens ADD CONSTRAINT one_time_tokens_purpose_check
    CHECK (purpose IN ('confirmation', 'recovery', 'magiclink', 'email_otp', 'reauthentication'));
-- A mailed link started by a PKCE client ends with an authorization code for that client.
ALTER TABLE app.one_time_tokens
    ADD COLUMN code_challenge text CHECK (code_challenge ~ '^[A-Za-z0-9_-]{43}$'),
    ADD COLUMN redirect_to text CHECK (length(redirect_to) <= 2048);

-- Authorization codes of the PKCE flow. The session they stand for is sealed with the server's
-- key (its tokens are never stored readable) and handed out once, to the verifier's holder.
CREATE TABLE app.auth_codes (
    code_hash       bytea PRIMARY KEY CHECK (length(code_hash) = 32),
    user_id         uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    session_id      uuid NOT NULL,
    code_challenge  text NOT NULL CHECK (code_challenge ~ '^[A-Za-z0-9_-]{43}$'),
    sealed_session  bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX auth_codes_user ON app.auth_codes (user_id);
ALTER TABLE app.auth_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.auth_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY auth_codes_self ON app.auth_codes
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON app.auth_codes TO leadgen_app;

RESET ROLE;

GRANT SELECT ON app.auth_codes TO leadgen_auth_definer;

CREATE FUNCTION app.auth_find_code(p_hash bytea)
    RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT c.user_id FROM app.auth_codes c WHERE c.code_hash = p_hash $$;
ALTER FUNCTION app.auth_find_code(bytea) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.auth_find_code(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.auth_find_code(bytea) TO leadgen_app;
