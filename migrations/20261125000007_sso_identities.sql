-- Single sign-on identities: a (provider, subject) pair from Google or LinkedIn linked to one
-- LeadGen user. The subject is the provider's stable account id (`sub`), never the email, which
-- can change hands at the provider.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.identities (
    provider        text NOT NULL CHECK (provider IN ('google', 'linkedin')),
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id         uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    -- The address the provider vouched for when the identity was last used.
    email           text CHECK (length(email) <= 320),
    created_at      timestamptz NOT NULL,
    last_sign_in_at timestamptz NOT NULL,
    PRIMARY KEY (provider, subject),
    -- One identity per provider and user: linking a second Google account replaces nothing silently.
    UNIQUE (user_id, provider)
);
ALTER TABLE app.identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.identities FORCE ROW LEVEL SECURITY;
CREATE POLICY identities_self ON app.identities
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

RESET ROLE;

GRANT SELECT ON app.identities TO leadgen_auth_definer;

-- Who a provider's subject is, before anyone is signed in.
CREATE FUNCTION app.auth_find_identity(p_provider text, p_subject text)
    RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT i.user_id FROM app.identities i WHERE i.provider = p_provider AND i.subject = p_subject $$;

-- Whether an address already has an account (password or not), and whether it is confirmed:
-- an SSO sign-in for that address must link, not create a second account.
CREATE FUNCTION app.auth_find_account(p_email text)
    RETURNS TABLE (user_id uuid, email_confirmed_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT u.id, u.email_confirmed_at FROM app.users u WHERE u.email = lower(p_email) $$;

ALTER FUNCTION app.auth_find_identity(text, text) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.auth_find_account(text) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.auth_find_identity(text, text), app.auth_find_account(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.auth_find_identity(text, text), app.auth_find_account(text) TO leadgen_app;
