-- The early-access list of the landing page: people who asked to hear when LeadGen opens to
-- them, confirmed by a mailed link (double opt-in), and the counter of posts the bot traps
-- caught (which are stored nowhere else).
--
-- The list belongs to the operator, not to any organization, and anyone may post to it, so the
-- tables are closed to every role (forced RLS, a policy that admits nothing) and reached only
-- through the narrow SECURITY DEFINER functions below, each doing one thing to one row. The
-- server's role can add an address and follow a signed link, but can list the addresses only
-- through `early_access_list`, which the operator's commands use.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.early_access (
    id               uuid PRIMARY KEY,
    email            text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) <= 320),
    name             text CHECK (length(name) <= 200),
    company          text CHECK (length(company) <= 200),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'confirmed', 'unsubscribed')),
    created_at       timestamptz NOT NULL,
    -- The last confirmation mail (a repeated post mails it again only after a while).
    confirm_sent_at  timestamptz NOT NULL,
    confirmed_at     timestamptz,
    invited_at       timestamptz,
    unsubscribed_at  timestamptz,
    -- Where the first post came from, for abuse reports.
    ip               inet,
    user_agent       text CHECK (length(user_agent) <= 512)
);
ALTER TABLE app.early_access ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.early_access FORCE ROW LEVEL SECURITY;
CREATE POLICY early_access_definer_only ON app.early_access USING (false) WITH CHECK (false);
REVOKE ALL ON app.early_access FROM leadgen_app, leadgen_maintenance;

CREATE TABLE app.early_access_spam (
    day     date NOT NULL,
    reason  text NOT NULL CHECK (reason IN ('honeypot', 'too_fast', 'bad_stamp')),
    posts   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, reason)
);
ALTER TABLE app.early_access_spam ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.early_access_spam FORCE ROW LEVEL SECURITY;
CREATE POLICY early_access_spam_definer_only ON app.early_access_spam USING (false) WITH CHECK (false);
REVOKE ALL ON app.early_access_spam FROM leadgen_app, leadgen_maintenance;

RESET ROLE;

GRANT SELECT, INSERT, UPDATE ON app.early_access, app.early_access_spam TO leadgen_auth_definer;

-- A post of the form. Returns the row's id and what to mail: 'confirm' for a new address, or a
-- pending one whose last mail is older than `p_resend_after_secs`; 'none' otherwise (confirmed,
-- unsubscribed, or mailed a moment ago). The same post twice leaves one row.
CREATE FUNCTION app.early_access_submit(
    p_id uuid, p_email text, p_name text, p_company text, p_ip inet, p_user_agent text,
    p_now timestamptz, p_resend_after_secs integer)
    RETURNS TABLE (id uuid, mail text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        r app.early_access%ROWTYPE;
    BEGIN
        INSERT INTO app.early_access (id, email, name, company, created_at, confirm_sent_at, ip, user_agent)
        VALUES (p_id, p_email, p_name, p_company, p_now, p_now, p_ip, p_user_agent)
        ON CONFLICT (email) DO NOTHING;
        SELECT * INTO r FROM app.early_access e WHERE e.email = p_email FOR UPDATE;
        IF r.id = p_id THEN
            RETURN QUERY SELECT r.id, 'confirm'::text;
        ELSIF r.status = 'pending'
              AND r.confirm_sent_at <= p_now - make_interval(secs => p_resend_after_secs) THEN
            UPDATE app.early_access e SET confirm_sent_at = p_now WHERE e.id = r.id;
            RETURN QUERY SELECT r.id, 'confirm'::text;
        ELSE
            RETURN QUERY SELECT r.id, 'none'::text;
        END IF;
    END
    $$;

-- The signed confirmation link was followed: pending becomes confirmed. Returns the status
-- after the call, or NULL when the row does not exist.
CREATE FUNCTION app.early_access_confirm(p_id uuid, p_now timestamptz)
    RETURNS text
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        WITH upd AS (
            UPDATE app.early_access SET status = 'confirmed', confirmed_at = p_now
            WHERE id = p_id AND status = 'pending'
            RETURNING status
        )
        SELECT COALESCE((SELECT status FROM upd), (SELECT status FROM app.early_access WHERE id = p_id))
    $$;

-- The signed unsubscribe link was used: no mail of the list reaches the address again.
CREATE FUNCTION app.early_access_unsubscribe(p_id uuid, p_now timestamptz)
    RETURNS boolean
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        WITH upd AS (
            UPDATE app.early_access
            SET status = 'unsubscribed', unsubscribed_at = COALESCE(unsubscribed_at, p_now)
            WHERE id = p_id
            RETURNING 1
        )
        SELECT EXISTS (SELECT 1 FROM upd)
    $$;

-- A post a trap caught: counted, nothing else kept.
CREATE FUNCTION app.early_access_spam_add(p_reason text, p_now timestamptz)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        INSERT INTO app.early_access_spam (day, reason, posts)
        VALUES ((p_now AT TIME ZONE 'UTC')::date, p_reason, 1)
        ON CONFLICT (day, reason) DO UPDATE SET posts = app.early_access_spam.posts + 1
    $$;

-- The operator's view of the list (the `leadgen waitlist` commands).
CREATE FUNCTION app.early_access_list()
    RETURNS TABLE (id uuid, email text, name text, company text, status text,
                   created_at timestamptz, confirmed_at timestamptz, invited_at timestamptz,
                   unsubscribed_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT e.id, e.email, e.name, e.company, e.status, e.created_at, e.confirmed_at,
               e.invited_at, e.unsubscribed_at
        FROM app.early_access e ORDER BY e.created_at, e.id
    $$;

CREATE FUNCTION app.early_access_spam_counts()
    RETURNS TABLE (reason text, posts bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.reason, sum(s.posts)::bigint FROM app.early_access_spam s GROUP BY s.reason ORDER BY 1
    $$;

-- Marks a confirmed address invited; false for any other (pending, unsubscribed, unknown).
CREATE FUNCTION app.early_access_invite(p_id uuid, p_now timestamptz)
    RETURNS boolean
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        WITH upd AS (
            UPDATE app.early_access SET invited_at = p_now
            WHERE id = p_id AND status = 'confirmed'
            RETURNING 1
        )
        SELECT EXISTS (SELECT 1 FROM upd)
    $$;

ALTER FUNCTION app.early_access_submit(uuid, text, text, text, inet, text, timestamptz, integer) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.early_access_confirm(uuid, timestamptz) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.early_access_unsubscribe(uuid, timestamptz) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.early_access_spam_add(text, timestamptz) OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.early_access_list() OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.early_access_spam_counts() OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.early_access_invite(uuid, timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION
    app.early_access_submit(uuid, text, text, text, inet, text, timestamptz, integer),
    app.early_access_confirm(uuid, timestamptz),
    app.early_access_unsubscribe(uuid, timestamptz),
    app.early_access_spam_add(text, timestamptz),
    app.early_access_list(),
    app.early_access_spam_counts(),
    app.early_access_invite(uuid, timestamptz)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    app.early_access_submit(uuid, text, text, text, inet, text, timestamptz, integer),
    app.early_access_confirm(uuid, timestamptz),
    app.early_access_unsubscribe(uuid, timestamptz),
    app.early_access_spam_add(text, timestamptz),
    app.early_access_list(),
    app.early_access_spam_counts(),
    app.early_access_invite(uuid, timestamptz)
    TO leadgen_app;
