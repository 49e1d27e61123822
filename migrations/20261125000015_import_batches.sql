-- Imports write with several connections at once (create-only imports; one connection keeps the
-- row order that merges need). Batches may then commit out of order, so the checkpoint becomes a
-- ledger: each batch's number commits with its leads, and a resumed job skips the numbers found
-- here. The batch size is fixed per job, so the numbering survives a configuration change.
SET LOCAL ROLE leadgen_owner;

ALTER TABLE app.import_jobs ADD COLUMN batch_rows integer CHECK (batch_rows > 0);

CREATE TABLE app.import_batches (
    job_id      uuid NOT NULL REFERENCES app.import_jobs (id) ON DELETE CASCADE,
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    batch_no    bigint NOT NULL CHECK (batch_no >= 0),
    rows        integer NOT NULL CHECK (rows >= 0),
    PRIMARY KEY (job_id, batch_no)
);
ALTER TABLE app.import_batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.import_batches FORCE ROW LEVEL SECURITY;
CREATE POLICY import_batches_tenant ON app.import_batches
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

-- A job interrupted under the previous checkpoint (a row count) cannot resume under this one.
UPDATE app.import_jobs SET status = 'failed', finished_at = now(), updated_at = now(),
       error = 'interrupted by an upgrade; upload the file again'
WHERE status IN ('queued', 'running') AND rows_done > 0;

RESET ROLE;
