-- Identity: credentials, sessions, rotating refresh tokens and one-time tokens (email
-- confirmation, password recovery), all under forced row-level security keyed by the user.
--
-- Sign-in and refresh start before anyone is known to the database, so a few narrow lookups run
-- as SECURITY DEFINER functions owned by `leadgen_auth_definer` (NOLOGIN, BYPASSRLS). Each answers
-- exactly one question about one row (the hash stored for an email, the session of a refresh
-- token hash); the server's role can call them but still cannot list or read other users' rows.
DO $$
BEGIN
    BEGIN
        CREATE ROLE leadgen_auth_definer NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS NOINHERIT;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;
GRANT USAGE ON SCHEMA app TO leadgen_auth_definer;

SET LOCAL ROLE leadgen_owner;

ALTER TABLE app.users
    ADD COLUMN email_confirmed_at timestamptz,
    ADD COLUMN last_sign_in_at timestamptz,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN user_metadata jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(user_metadata) = 'object' AND octet_length(user_metadata::text) <= 16384);

CREATE TABLE app.credentials (
    user_id       uuid PRIMARY KEY REFERENCES app.users (id) ON DELETE CASCADE,
    -- bcrypt ($2a$/$2b$/$2y$), never the password.
    password_hash text NOT NULL CHECK (password_hash ~ '^\$2[aby]\$\d\d\$'),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app.credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY credentials_self ON app.credentials
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

CREATE TABLE app.sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    aal             text NOT NULL DEFAULT 'aal1' CHECK (aal IN ('aal1', 'aal2')),
    created_at      timestamptz NOT NULL,
    refreshed_at    timestamptz,
    -- Absolute end of the session, whatever the refreshes.
    not_after       timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text,
    user_agent      text CHECK (length(user_agent) <= 512),
    ip              inet
);
CREATE INDEX sessions_user ON app.sessions (user_id);
ALTER TABLE app.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY sessions_self ON app.sessions
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

-- Refresh tokens are stored as SHA-256 hashes; each use rotates to the next token of the chain.
CREATE TABLE app.refresh_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id  uuid NOT NULL REFERENCES app.sessions (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    rotated_at  timestamptz
);
CREATE INDEX refresh_tokens_session ON app.refresh_tokens (session_id);
ALTER TABLE app.refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY refresh_tokens_self ON app.refresh_tokens
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

-- Single-use, expiring tokens sent by mail, stored hashed.
CREATE TABLE app.one_time_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('confirmation', 'recovery')),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX one_time_tokens_user ON app.one_time_tokens (user_id);
ALTER TABLE app.one_time_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.one_time_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY one_time_tokens_self ON app.one_time_tokens
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

RESET ROLE;

-- The definer's narrow lookups. search_path is pinned so a caller cannot redirect them.
GRANT SELECT ON app.users, app.credentials, app.refresh_tokens, app.one_time_tokens TO leadgen_auth_definer;

CREATE FUNCTION app.auth_find_login(p_email text)
    RETURNS TABLE (user_id uuid, password_hash text, email_confirmed_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT u.id, c.password_hash, u.email_confirmed_at
        FROM app.users u JOIN app.credentials c ON c.user_id = u.id
        WHERE u.email = lower(p_email)
    $$;

CREATE FUNCTION app.auth_find_refresh(p_hash bytea)
    RETURNS TABLE (user_id uuid, session_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT r.user_id, r.session_id FROM app.refresh_tokens r WHERE r.token_hash = p_hash $$;

CREATE FUNCTION app.auth_find_one_time(p_hash bytea, p_purpose text)
    RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT t.user_id FROM app.one_time_tokens t WHERE t.token_hash = p_hash AND t.purpose = p_purpose $$;

ALTER FUNCTION app.auth_find_login(text) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.auth_find_refresh(bytea) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.auth_find_one_time(bytea, text) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.auth_find_login(text), app.auth_find_refresh(bytea), app.auth_find_one_time(bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.auth_find_login(text), app.auth_find_refresh(bytea), app.auth_find_one_time(bytea, text) TO leadgen_app;
