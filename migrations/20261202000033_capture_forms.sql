-- Capture forms: forms an organization embeds on its own websites, whose submissions become
-- leads, and the record of each consent given through one.
--
-- Anyone on the internet posts to a form, so the server learns the organization only from the
-- form's public key. The path chosen here: two narrow definer functions answer the questions
-- that come before any tenant context exists (which form a key names, with what it needs to
-- judge the post; count a view or a spam post; admit a post under the form's hourly limit), and
-- everything that touches leads runs afterwards in an ordinary tenant transaction for the
-- organization the key resolved to, under the same forced RLS as every other write. A definer
-- that inserted leads itself would have to repeat the leads slice's encryption and dedupe in SQL.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.capture_forms (
    id                   uuid NOT NULL,
    org_id               uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    -- Random, URL-safe, shown in the embed snippet: it names the form, it grants nothing else.
    public_key           text NOT NULL UNIQUE CHECK (public_key ~ '^[A-Za-z0-9_-]{22,64}$'),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- [{"name": <lead field>, "label": …, "required": bool}], checked by the server at save.
    fields               jsonb NOT NULL CHECK (jsonb_typeof(fields) = 'array'),
    consent_text         text CHECK (length(consent_text) <= 4000),
    consent_version      text CHECK (length(consent_version) BETWEEN 1 AND 50),
    ccpa_notice          text CHECK (length(ccpa_notice) <= 4000),
    thank_you            text NOT NULL CHECK (length(thank_you) BETWEEN 1 AND 2000),
    -- https only, on one of the allowed origins (checked at save): never an open redirect.
    redirect_url         text CHECK (length(redirect_url) <= 2000 AND redirect_url LIKE 'https://%'),
    allowed_origins      text[] NOT NULL CHECK (cardinality(allowed_origins) BETWEEN 1 AND 20),
    dedupe               text NOT NULL DEFAULT 'fill_empty'
                         CHECK (dedupe IN ('create_only', 'fill_empty', 'update_existing')),
    -- A plain HTML snippet (no script) cannot carry a fresh fill-time stamp.
    accept_without_stamp boolean NOT NULL DEFAULT true,
    status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    -- Members mailed on each accepted submission.
    owners               uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(owners) <= 20),
    max_per_hour         integer NOT NULL DEFAULT 500 CHECK (max_per_hour BETWEEN 1 AND 100000),
    -- The form's own rate window: submissions admitted since `window_start` (an hour).
    window_start         timestamptz,
    window_count         integer NOT NULL DEFAULT 0,
    views                bigint NOT NULL DEFAULT 0,
    submissions          bigint NOT NULL DEFAULT 0,
    spam                 bigint NOT NULL DEFAULT 0,
    conversions          bigint NOT NULL DEFAULT 0,
    created_by           uuid NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    -- For the consent records' link, which outlives the form (see there).
    UNIQUE (id),
    UNIQUE (org_id, name),
    CHECK ((consent_text IS NULL) = (consent_version IS NULL))
);

-- What a person agreed to, when and from where: the text's version and its SHA-256, so the exact
-- wording is provable even after the form's text changes. A record lives as long as its lead:
-- deleting the form only clears the link (the proof of consent must not go with the form), and
-- deleting the lead (erasure) deletes it.
CREATE TABLE app.consent_records (
    id              uuid NOT NULL,
    org_id          uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    lead_id         uuid NOT NULL,
    form_id         uuid REFERENCES app.capture_forms (id) ON DELETE SET NULL,
    consent_version text NOT NULL CHECK (length(consent_version) BETWEEN 1 AND 50),
    text_sha256     bytea NOT NULL CHECK (length(text_sha256) = 32),
    given_at        timestamptz NOT NULL,
    ip              inet,
    user_agent      text CHECK (length(user_agent) <= 512),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, lead_id) REFERENCES app.leads (org_id, id) ON DELETE CASCADE
);
CREATE INDEX consent_records_lead ON app.consent_records (org_id, lead_id);
CREATE INDEX consent_records_form ON app.consent_records (org_id, form_id);

ALTER TABLE app.capture_forms ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.capture_forms FORCE ROW LEVEL SECURITY;
ALTER TABLE app.consent_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.consent_records FORCE ROW LEVEL SECURITY;

CREATE POLICY capture_forms_tenant ON app.capture_forms
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
-- A consent record is read with its lead: only where the lead itself is readable.
CREATE POLICY consent_records_tenant ON app.consent_records
    USING (org_id = app.current_org_id()
           AND EXISTS (SELECT 1 FROM app.leads l
                       WHERE l.org_id = consent_records.org_id AND l.id = consent_records.lead_id))
    WITH CHECK (org_id = app.current_org_id());

RESET ROLE;

GRANT SELECT, UPDATE ON app.capture_forms TO leadgen_auth_definer;

-- The form a public key names, with what judging a post needs. Nothing else about the
-- organization leaves: the caller opens a tenant transaction for `org_id` afterwards.
CREATE FUNCTION app.capture_form_public(p_key text)
    RETURNS TABLE (id uuid, org_id uuid, name text, fields jsonb, consent_text text,
                   consent_version text, ccpa_notice text, thank_you text, redirect_url text,
                   allowed_origins text[], dedupe text, accept_without_stamp boolean,
                   status text, owners uuid[], created_by uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT f.id, f.org_id, f.name, f.fields, f.consent_text, f.consent_version, f.ccpa_notice,
               f.thank_you, f.redirect_url, f.allowed_origins, f.dedupe, f.accept_without_stamp,
               f.status, f.owners, f.created_by
        FROM app.capture_forms f WHERE f.public_key = p_key
    $$;
ALTER FUNCTION app.capture_form_public(text) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.capture_form_public(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.capture_form_public(text) TO leadgen_app;

-- Counts a served form (`view`) or a post that tripped a trap (`spam`): no tenant context
-- exists for either, and neither stores anything but the counter.
CREATE FUNCTION app.capture_form_count(p_form uuid, p_kind text)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.capture_forms f
        SET views = f.views + (p_kind = 'view')::int, spam = f.spam + (p_kind = 'spam')::int
        WHERE f.id = p_form
    $$;
ALTER FUNCTION app.capture_form_count(uuid, text) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.capture_form_count(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.capture_form_count(uuid, text) TO leadgen_app;

-- The per-form limit: admits a post when fewer than `max_per_hour` were admitted in the current
-- hour-long window (a fixed window, shared by every instance through the row); the seconds to
-- wait otherwise. One row lock per post, which is also what serialises the counter.
CREATE FUNCTION app.capture_form_admit(p_form uuid, p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        f record;
    BEGIN
        SELECT c.window_start, c.window_count, c.max_per_hour INTO f
        FROM app.capture_forms c WHERE c.id = p_form FOR UPDATE;
        IF NOT FOUND THEN
            RETURN 0;
        END IF;
        IF f.window_start IS NULL OR f.window_start <= p_now - interval '1 hour' THEN
            UPDATE app.capture_forms SET window_start = p_now, window_count = 1 WHERE id = p_form;
            RETURN 0;
        END IF;
        IF f.window_count >= f.max_per_hour THEN
            RETURN greatest(1, ceil(extract(epoch FROM f.window_start + interval '1 hour' - p_now))::int);
        END IF;
        UPDATE app.capture_forms SET window_count = window_count + 1 WHERE id = p_form;
        RETURN 0;
    END
    $$;
ALTER FUNCTION app.capture_form_admit(uuid, timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.capture_form_admit(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.capture_form_admit(uuid, timestamptz) TO leadgen_app;
