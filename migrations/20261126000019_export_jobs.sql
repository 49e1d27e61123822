-- Large exports as jobs: the file is written on the server and fetched through a link that
-- carries a random token (only its SHA-256 is stored) and expires. Each job is its creator's: the
-- policy lets only the principal that started it read it, so a link is useless to anyone else
-- even inside the organization. The file holds what the creator could read when it ran.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.export_jobs (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    created_by  uuid NOT NULL,
    format      text NOT NULL CHECK (format IN ('csv', 'json')),
    filter      jsonb NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    rows        bigint NOT NULL DEFAULT 0,
    bytes       bigint NOT NULL DEFAULT 0,
    token_sha256 bytea NOT NULL CHECK (length(token_sha256) = 32),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX export_jobs_creator ON app.export_jobs (org_id, created_by, created_at DESC);

ALTER TABLE app.export_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.export_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY export_jobs_own ON app.export_jobs
    USING (org_id = app.current_org_id() AND created_by = app.current_user_id())
    WITH CHECK (org_id = app.current_org_id() AND created_by = app.current_user_id());

RESET ROLE;
