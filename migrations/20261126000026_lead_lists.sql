-- Lists: leads gathered by hand under a name (a segment is a saved search; a list is the leads
-- someone put in it), private to their owner or shared with the organization. A list's entries
-- follow their lead: whoever cannot read a lead does not see it in any list, even a shared one
-- (the policies ask app.leads, whose own policy applies inside them).
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.lead_lists (
    id          uuid NOT NULL,
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    owner_id    uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    shared      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, owner_id, name)
);
CREATE TABLE app.lead_list_entries (
    org_id      uuid NOT NULL,
    list_id     uuid NOT NULL,
    lead_id     uuid NOT NULL,
    added_by    uuid NOT NULL,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (org_id, list_id, lead_id),
    FOREIGN KEY (org_id, list_id) REFERENCES app.lead_lists (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, lead_id) REFERENCES app.leads (org_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_list_entries_lead ON app.lead_list_entries (org_id, lead_id);

ALTER TABLE app.lead_lists ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.lead_lists FORCE ROW LEVEL SECURITY;
ALTER TABLE app.lead_list_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.lead_list_entries FORCE ROW LEVEL SECURITY;

CREATE POLICY lead_lists_read ON app.lead_lists FOR SELECT
    USING (org_id = app.current_org_id() AND (shared OR owner_id = app.current_user_id()));
CREATE POLICY lead_lists_insert ON app.lead_lists FOR INSERT
    WITH CHECK (org_id = app.current_org_id() AND owner_id = app.current_user_id());
CREATE POLICY lead_lists_update ON app.lead_lists FOR UPDATE
    USING (org_id = app.current_org_id() AND owner_id = app.current_user_id())
    WITH CHECK (org_id = app.current_org_id() AND owner_id = app.current_user_id());
-- The owner deletes a list; an admin may remove a shared one.
CREATE POLICY lead_lists_delete ON app.lead_lists FOR DELETE
    USING (org_id = app.current_org_id()
           AND (owner_id = app.current_user_id() OR (shared AND app.current_role_name() = 'admin')));

-- An entry exists for whoever sees its list and can read its lead; whoever sees a list adds to
-- it and removes from it the leads they can read.
CREATE POLICY lead_list_entries_read ON app.lead_list_entries FOR SELECT USING (
    org_id = app.current_org_id()
    AND EXISTS (SELECT 1 FROM app.lead_lists l WHERE l.org_id = lead_list_entries.org_id AND l.id = lead_list_entries.list_id)
    AND EXISTS (SELECT 1 FROM app.leads d WHERE d.org_id = lead_list_entries.org_id AND d.id = lead_list_entries.lead_id)
);
CREATE POLICY lead_list_entries_insert ON app.lead_list_entries FOR INSERT WITH CHECK (
    org_id = app.current_org_id() AND added_by = app.current_user_id()
    AND EXISTS (SELECT 1 FROM app.lead_lists l WHERE l.org_id = lead_list_entries.org_id AND l.id = lead_list_entries.list_id)
    AND EXISTS (SELECT 1 FROM app.leads d WHERE d.org_id = lead_list_entries.org_id AND d.id = lead_list_entries.lead_id)
);
CREATE POLICY lead_list_entries_delete ON app.lead_list_entries FOR DELETE USING (
    org_id = app.current_org_id()
    AND EXISTS (SELECT 1 FROM app.lead_lists l WHERE l.org_id = lead_list_entries.org_id AND l.id = lead_list_entries.list_id)
    AND EXISTS (SELECT 1 FROM app.leads d WHERE d.org_id = lead_list_entries.org_id AND d.id = lead_list_entries.lead_id)
);

RESET ROLE;

-- Entries are added and removed, never rewritten.
REVOKE UPDATE ON app.lead_list_entries FROM leadgen_app;
