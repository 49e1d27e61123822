-- Organization deletion: an admin asks, every member is told, and after a grace period
-- `leadgen accounts purge` deletes the organization with every row that hangs on it. Any admin
-- may cancel before then.
SET LOCAL ROLE leadgen_owner;

ALTER TABLE app.organizations
    ADD COLUMN deletion_requested_at timestamptz,
    ADD COLUMN deletion_due_at timestamptz,
    ADD COLUMN deletion_requested_by uuid,
    ADD CONSTRAINT organizations_deletion_pair
        CHECK ((deletion_requested_at IS NULL) = (deletion_due_at IS NULL));

RESET ROLE;
