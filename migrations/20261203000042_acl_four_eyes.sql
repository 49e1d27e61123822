-- Four eyes on ACLs: a change that widens who may read or change a lead (a lower sensitivity,
-- read or write groups opened to everyone, groups added) waits here until a second admin
-- approves it; narrowing applies at once. One pending change per lead: a new request replaces
-- the old one.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.acl_pending (
    org_id        uuid NOT NULL,
    lead_id       uuid NOT NULL,
    read_groups   uuid[] NOT NULL CHECK (cardinality(read_groups) <= 20),
    write_groups  uuid[] NOT NULL CHECK (cardinality(write_groups) <= 20),
    sensitivity   text NOT NULL CHECK (sensitivity IN ('public', 'internal', 'confidential', 'restricted')),
    -- Set when the change is a rollback to this revision.
    rollback_of   integer,
    requested_by  uuid NOT NULL,
    requested_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, lead_id),
    FOREIGN KEY (org_id, lead_id) REFERENCES app.leads (org_id, id) ON DELETE CASCADE
);
ALTER TABLE app.acl_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.acl_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY acl_pending_admins ON app.acl_pending
    USING (org_id = app.current_org_id() AND app.is_admin_aal2())
    WITH CHECK (org_id = app.current_org_id() AND app.is_admin_aal2());

RESET ROLE;
