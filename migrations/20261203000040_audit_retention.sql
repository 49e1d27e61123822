-- The audit trail's own retention: `leadgen retention run` removes an organization's audit rows
-- older than `retention.audit_months` (24 by default). The chain stays verifiable from an
-- anchor: the sequence number and hash of the last removed row, which verification starts from.
-- The removal is itself a row of the chain (`audit.purged`, naming the anchor), and verification
-- refuses an anchor that no row declares.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.audit_anchors (
    org_id      uuid PRIMARY KEY REFERENCES app.organizations (id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq >= 1),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    purged_rows bigint NOT NULL CHECK (purged_rows >= 0),
    updated_at  timestamptz NOT NULL
);
ALTER TABLE app.audit_anchors ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.audit_anchors FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_anchors_read ON app.audit_anchors FOR SELECT
    USING (org_id = app.current_org_id() AND app.is_admin_aal2());

RESET ROLE;

-- The server reads anchors at most; the data-lifecycle jobs move them and remove old rows.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON app.audit_anchors FROM leadgen_app;
GRANT DELETE ON app.audit_log TO leadgen_maintenance;
