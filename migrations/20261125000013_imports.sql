-- Lead imports: durable background jobs. The uploaded file stays in the receiving server's data
-- folder; the job row is the checkpoint. Each batch of leads commits together with the job's new
-- position, so a crash resumes exactly where the last batch ended: no lost rows, no duplicates.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.import_jobs (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    created_by      uuid NOT NULL,
    -- The server instance whose data folder holds the file; only it runs the job.
    node            text NOT NULL CHECK (length(node) BETWEEN 1 AND 100),
    file_name       text CHECK (length(file_name) <= 255),
    file_bytes      bigint NOT NULL CHECK (file_bytes >= 0),
    file_sha256     bytea NOT NULL CHECK (length(file_sha256) = 32),
    status          text NOT NULL CHECK (status IN ('uploaded', 'queued', 'running', 'done', 'failed', 'cancelled')),
    mode            text CHECK (mode IN ('create_only', 'update_existing', 'fill_empty')),
    mapping         jsonb NOT NULL,
    -- Checkpoint: data rows consumed and file bytes read when the last batch committed.
    rows_done       bigint NOT NULL DEFAULT 0,
    bytes_done      bigint NOT NULL DEFAULT 0,
    created         bigint NOT NULL DEFAULT 0,
    updated         bigint NOT NULL DEFAULT 0,
    duplicates      bigint NOT NULL DEFAULT 0,
    rejected        bigint NOT NULL DEFAULT 0,
    warnings        bigint NOT NULL DEFAULT 0,
    error           text CHECK (length(error) <= 1000),
    lease_owner     text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX import_jobs_org ON app.import_jobs (org_id, created_at DESC);
CREATE INDEX import_jobs_pending ON app.import_jobs (node, created_at) WHERE status IN ('queued', 'running');

CREATE TABLE app.import_issues (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES app.import_jobs (id) ON DELETE CASCADE,
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    line        bigint NOT NULL,
    column_name text NOT NULL CHECK (length(column_name) <= 300),
    severity    text NOT NULL CHECK (severity IN ('reject', 'warn')),
    reason      text NOT NULL CHECK (length(reason) <= 1000)
);
CREATE INDEX import_issues_job ON app.import_issues (job_id, line, id);

ALTER TABLE app.import_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.import_jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE app.import_issues ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.import_issues FORCE ROW LEVEL SECURITY;
CREATE POLICY import_jobs_tenant ON app.import_jobs
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY import_issues_tenant ON app.import_issues
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

RESET ROLE;

-- The background worker of a server instance takes the oldest runnable job of its own node whose
-- lease has lapsed (a crashed worker's), for `p_lease_secs`. Jobs whose starter has left the
-- organization fail here: nobody may import in their name any more. Runs as the definer because
-- the worker has no tenant context until it knows the job.
GRANT SELECT, UPDATE ON app.import_jobs TO leadgen_auth_definer;
CREATE FUNCTION app.import_claim(p_node text, p_owner text, p_now timestamptz, p_lease_secs integer)
    RETURNS TABLE (id uuid, org_id uuid, created_by uuid, role text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        UPDATE app.import_jobs j SET status = 'failed', finished_at = p_now, updated_at = p_now,
               error = 'the member who started this import is no longer in the organization'
        WHERE j.node = p_node AND j.status IN ('queued', 'running')
          AND NOT EXISTS (SELECT 1 FROM app.memberships m
                          WHERE m.org_id = j.org_id AND m.user_id = j.created_by);
        RETURN QUERY
        UPDATE app.import_jobs j
           SET status = 'running', lease_owner = p_owner,
               lease_until = p_now + make_interval(secs => p_lease_secs),
               started_at = coalesce(j.started_at, p_now), updated_at = p_now
        FROM app.memberships m
        WHERE j.id = (SELECT c.id FROM app.import_jobs c
                      WHERE c.node = p_node AND c.status IN ('queued', 'running')
                        AND (c.lease_until IS NULL OR c.lease_until < p_now)
                      ORDER BY c.created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
          AND m.org_id = j.org_id AND m.user_id = j.created_by
        RETURNING j.id, j.org_id, j.created_by, m.role;
    END
    $$;
ALTER FUNCTION app.import_claim(text, text, timestamptz, integer) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.import_claim(text, text, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.import_claim(text, text, timestamptz, integer) TO leadgen_app;
