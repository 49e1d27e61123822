-- Data-subject requests (GDPR and CCPA) about the people in an organization's leads, the CCPA
-- flags on leads, and the guard that keeps an erased address from coming back.
SET LOCAL ROLE leadgen_owner;

-- Whether a lead's region and country place it in California. `CA` alone is a region code of
-- several countries, so it counts only with the United States named; `California` and `US-CA`
-- need no country, unless another one is named.
CREATE FUNCTION app.is_california(p_region text, p_country text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE
            WHEN lower(btrim(coalesce(p_region, ''))) IN ('california', 'calif.', 'calif', 'us-ca')
                THEN p_country IS NULL OR lower(btrim(p_country)) IN
                    ('us', 'usa', 'u.s.', 'u.s.a.', 'united states', 'united states of america', '')
            WHEN lower(btrim(coalesce(p_region, ''))) = 'ca'
                THEN lower(btrim(coalesce(p_country, ''))) IN
                    ('us', 'usa', 'u.s.', 'u.s.a.', 'united states', 'united states of america')
            ELSE false
        END
    $$;

-- `california_set` is an explicit answer (true or false) that overrides the derivation; the
-- flag itself is computed on every write, whichever path the lead came in by (API, pages,
-- import, capture form), so CCPA rules apply from collection on.
ALTER TABLE app.leads ADD COLUMN california_set boolean;
ALTER TABLE app.leads ADD COLUMN california boolean
    GENERATED ALWAYS AS (coalesce(california_set, app.is_california(region, country))) STORED;
-- The person opted out of the sale or sharing of their data (CCPA): exports leave the lead out
-- unless asked to include it, and campaigns do not send to it.
ALTER TABLE app.leads ADD COLUMN do_not_sell boolean NOT NULL DEFAULT false;

CREATE TABLE app.subject_requests (
    id            uuid NOT NULL,
    org_id        uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('access', 'rectification', 'erasure', 'ccpa_opt_out', 'ccpa_know')),
    law           text NOT NULL CHECK (law IN ('gdpr', 'ccpa')),
    -- The address is kept as its blind index (to find the lead, and to prove the request was
    -- met), and encrypted only while the request is open, to answer the person; an erasure
    -- drops the ciphertext when it completes.
    email_bidx    bytea NOT NULL CHECK (length(email_bidx) = 32),
    email_ct      bytea,
    note          text CHECK (length(note) <= 4000),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'completed', 'rejected')),
    received_at   timestamptz NOT NULL,
    due_at        timestamptz NOT NULL,
    created_by    uuid NOT NULL,
    created_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    completed_by  uuid,
    -- What fulfilling it did (counts, never personal data).
    outcome       jsonb CHECK (octet_length(outcome::text) <= 8192),
    -- Reminders already sent (days before the deadline), and whether the alert was raised.
    reminded_days integer[] NOT NULL DEFAULT '{}',
    alerted       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (org_id, id),
    CHECK (due_at > received_at),
    CHECK ((status = 'open') = (completed_at IS NULL))
);
CREATE INDEX subject_requests_open ON app.subject_requests (due_at) WHERE status = 'open';
CREATE INDEX subject_requests_email ON app.subject_requests (org_id, email_bidx);

ALTER TABLE app.subject_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.subject_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY subject_requests_tenant ON app.subject_requests
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

-- An address erased on request never becomes a lead again, whichever path it comes by. Import
-- and capture forms check first (to report the row, or to answer the form as usual); this is
-- the guard behind them. A check violation with its own name, so the API can say why.
CREATE FUNCTION app.refuse_erased_email() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM app.suppressions s
                       WHERE s.org_id = NEW.org_id AND s.email_bidx = NEW.email_bidx AND s.reason = 'erased') THEN
                RAISE EXCEPTION 'this email address was erased on request'
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'leads_email_erased';
            END IF;
            RETURN NEW;
        END
    $$;
CREATE TRIGGER leads_refuse_erased_insert BEFORE INSERT ON app.leads
    FOR EACH ROW WHEN (NEW.email_bidx IS NOT NULL) EXECUTE FUNCTION app.refuse_erased_email();
CREATE TRIGGER leads_refuse_erased_update BEFORE UPDATE OF email_bidx ON app.leads
    FOR EACH ROW WHEN (NEW.email_bidx IS NOT NULL AND NEW.email_bidx IS DISTINCT FROM OLD.email_bidx)
    EXECUTE FUNCTION app.refuse_erased_email();

RESET ROLE;

-- Open requests near their deadline, across organizations, for the reminder loop: the
-- smallest reminder threshold (7 or 2 days before) not yet sent, and whether the alert is due.
CREATE FUNCTION app.subject_requests_due(p_now timestamptz, p_alert_days integer)
    RETURNS TABLE (id uuid, org_id uuid, kind text, law text, due_at timestamptz, days integer, alert boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT r.id, r.org_id, r.kind, r.law, r.due_at, t.days,
               NOT r.alerted AND r.due_at - p_now <= make_interval(days => p_alert_days)
        FROM app.subject_requests r
        CROSS JOIN LATERAL (
            SELECT min(d) AS days FROM unnest(ARRAY[7, 2]) AS d
            WHERE r.due_at - p_now <= make_interval(days => d) AND NOT (d = ANY (r.reminded_days))
        ) t
        WHERE r.status = 'open'
          AND (t.days IS NOT NULL OR (NOT r.alerted AND r.due_at - p_now <= make_interval(days => p_alert_days)))
    $$;

-- Marks a reminder (this threshold and every larger one) and, when told, the alert as sent.
CREATE FUNCTION app.subject_request_reminded(p_id uuid, p_days integer, p_alerted boolean)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.subject_requests SET
            reminded_days = CASE WHEN p_days IS NULL THEN reminded_days ELSE ARRAY(
                SELECT DISTINCT d FROM unnest(reminded_days || ARRAY(SELECT x FROM unnest(ARRAY[7, 2]) x WHERE x >= p_days)) d
                ORDER BY d) END,
            alerted = alerted OR p_alerted
        WHERE id = p_id
    $$;

-- Every list a lead is on, other members' private lists included, for an admin's access
-- package (the person has the right to know every use of their data; the lists' own policy
-- hides private lists even from admins).
CREATE FUNCTION app.subject_lead_lists(p_lead uuid)
    RETURNS TABLE (list_id uuid, name text, shared boolean, added_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT l.id, l.name, l.shared, e.added_at
        FROM app.lead_list_entries e JOIN app.lead_lists l ON l.org_id = e.org_id AND l.id = e.list_id
        WHERE e.org_id = app.current_org_id() AND e.lead_id = p_lead AND app.is_admin_aal2()
        ORDER BY e.added_at, l.id
    $$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['app.subject_requests_due(timestamptz, integer)',
                             'app.subject_request_reminded(uuid, integer, boolean)',
                             'app.subject_lead_lists(uuid)']
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO leadgen_auth_definer', f);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO leadgen_app', f);
    END LOOP;
END
$$;
GRANT SELECT, UPDATE ON app.subject_requests TO leadgen_auth_definer;
GRANT SELECT ON app.lead_lists, app.lead_list_entries TO leadgen_auth_definer;
