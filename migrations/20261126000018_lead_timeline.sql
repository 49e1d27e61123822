-- A lead's notes and activities (calls, emails, meetings, tasks, and what the system did: status
-- changes, merges). Both follow their lead: whoever cannot read the lead cannot see them (the
-- policies ask app.leads, whose own policy applies inside them), and adding one needs the right to
-- write the lead. Merging two leads moves them to the lead that stays.
SET LOCAL ROLE leadgen_owner;

-- Whether the principal may write lead (org, id): the rule of the leads_update policy, as a
-- predicate the policies below share. Reading the lead row applies leads_read as well.
CREATE FUNCTION app.lead_writable(lead_org uuid, lead uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT EXISTS (
            SELECT 1 FROM app.leads l
            WHERE l.org_id = lead_org AND l.id = lead
              AND (app.current_role_name() = 'admin' OR l.write_groups = '{}'
                   OR l.write_groups && app.current_groups()))
    $$;

CREATE TABLE app.lead_notes (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL,
    lead_id     uuid NOT NULL,
    author_id   uuid NOT NULL,
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at  timestamptz NOT NULL,
    FOREIGN KEY (org_id, lead_id) REFERENCES app.leads (org_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_notes_lead ON app.lead_notes (org_id, lead_id, id DESC);

CREATE TABLE app.lead_activities (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL,
    lead_id     uuid NOT NULL,
    -- Who logged it; for system activities, who caused them.
    actor_id    uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('call', 'email', 'meeting', 'task', 'status_change', 'merge')),
    summary     text NOT NULL CHECK (length(summary) BETWEEN 1 AND 1000),
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    FOREIGN KEY (org_id, lead_id) REFERENCES app.leads (org_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_activities_lead ON app.lead_activities (org_id, lead_id, occurred_at DESC, id DESC);

ALTER TABLE app.lead_notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.lead_notes FORCE ROW LEVEL SECURITY;
ALTER TABLE app.lead_activities ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.lead_activities FORCE ROW LEVEL SECURITY;

CREATE POLICY lead_notes_read ON app.lead_notes FOR SELECT USING (
    org_id = app.current_org_id()
    AND EXISTS (SELECT 1 FROM app.leads l WHERE l.org_id = lead_notes.org_id AND l.id = lead_notes.lead_id)
);
CREATE POLICY lead_notes_insert ON app.lead_notes FOR INSERT WITH CHECK (
    org_id = app.current_org_id() AND author_id = app.current_user_id()
    AND app.lead_writable(org_id, lead_id)
);
-- Notes are not edited; a merge moves them (both leads writable).
CREATE POLICY lead_notes_move ON app.lead_notes FOR UPDATE
    USING (org_id = app.current_org_id() AND app.lead_writable(org_id, lead_id))
    WITH CHECK (org_id = app.current_org_id() AND app.lead_writable(org_id, lead_id));
-- Their author or an admin removes a note.
CREATE POLICY lead_notes_delete ON app.lead_notes FOR DELETE USING (
    org_id = app.current_org_id()
    AND (author_id = app.current_user_id() OR app.current_role_name() = 'admin')
    AND EXISTS (SELECT 1 FROM app.leads l WHERE l.org_id = lead_notes.org_id AND l.id = lead_notes.lead_id)
);

CREATE POLICY lead_activities_read ON app.lead_activities FOR SELECT USING (
    org_id = app.current_org_id()
    AND EXISTS (SELECT 1 FROM app.leads l WHERE l.org_id = lead_activities.org_id AND l.id = lead_activities.lead_id)
);
CREATE POLICY lead_activities_insert ON app.lead_activities FOR INSERT WITH CHECK (
    org_id = app.current_org_id() AND actor_id = app.current_user_id()
    AND app.lead_writable(org_id, lead_id)
);
CREATE POLICY lead_activities_move ON app.lead_activities FOR UPDATE
    USING (org_id = app.current_org_id() AND app.lead_writable(org_id, lead_id))
    WITH CHECK (org_id = app.current_org_id() AND app.lead_writable(org_id, lead_id));
-- The record of what happened stays: no DELETE policy (the lead's deletion cascades).

-- Duplicate candidates: the same LinkedIn profile, or the same company domain (names are then
-- compared by the server). Plain equality, so the indexes serve under row-level security.
CREATE INDEX leads_linkedin ON app.leads (org_id, linkedin_url) WHERE linkedin_url IS NOT NULL;
CREATE INDEX leads_domain ON app.leads (org_id, company_domain) WHERE company_domain IS NOT NULL;

REVOKE DELETE ON app.lead_activities FROM leadgen_app;

RESET ROLE;
