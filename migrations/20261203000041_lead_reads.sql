-- Who read which lead data, when and why: every read of a lead (confidential or restricted),
-- every page of a search or list, every export batch, and every reveal of a restricted lead's
-- contact details with the justification its reader typed. Admins (at aal2) read it; nobody
-- changes it; `leadgen retention run` removes entries older than `retention.audit_months`.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.lead_reads (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    -- The member, or the API key, that read.
    actor_id      uuid NOT NULL,
    at            timestamptz NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('read', 'search', 'export', 'reveal')),
    lead_ids      uuid[] NOT NULL CHECK (cardinality(lead_ids) BETWEEN 1 AND 1000),
    -- How many of them were restricted at the time.
    restricted    integer NOT NULL CHECK (restricted >= 0),
    justification text CHECK (length(justification) BETWEEN 1 AND 500),
    request_id    text CHECK (length(request_id) <= 100),
    CHECK ((kind = 'reveal') = (justification IS NOT NULL))
);
CREATE INDEX lead_reads_org_at ON app.lead_reads (org_id, at DESC, id DESC);
CREATE INDEX lead_reads_leads ON app.lead_reads USING gin (lead_ids);

ALTER TABLE app.lead_reads ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.lead_reads FORCE ROW LEVEL SECURITY;
CREATE POLICY lead_reads_insert ON app.lead_reads FOR INSERT
    WITH CHECK (org_id = app.current_org_id() AND actor_id = app.current_user_id());
CREATE POLICY lead_reads_read ON app.lead_reads FOR SELECT
    USING (org_id = app.current_org_id() AND app.is_admin_aal2());

RESET ROLE;

REVOKE UPDATE, DELETE, TRUNCATE ON app.lead_reads FROM leadgen_app;
