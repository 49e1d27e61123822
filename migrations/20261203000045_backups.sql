-- Backups and restore proofs. `leadgen backup run` records each run here; the manifest of a
-- successful run (row counts of every table, taken while writers pause, in the transaction that
-- commits the row) travels inside the backup, so a restore to that transaction can be checked
-- against it. `leadgen restore --verify` records its proofs. Operators' data, not any
-- organization's: no role but the definer functions below reads them.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.backup_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('full', 'incr')),
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    ok           boolean,
    -- pgBackRest's backup label, e.g. 20261203-101500F.
    label        text CHECK (length(label) <= 100),
    -- The transaction that committed the manifest: recovery to it (inclusive) reproduces the
    -- counts exactly.
    manifest_xid bigint,
    counts       jsonb,
    size_bytes   bigint,
    error        text CHECK (length(error) <= 2000)
);
CREATE INDEX backup_runs_recent ON app.backup_runs (kind, started_at DESC);

CREATE TABLE app.restore_proofs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    ok           boolean NOT NULL,
    label        text CHECK (length(label) <= 100),
    report       jsonb NOT NULL
);

ALTER TABLE app.backup_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.backup_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY backup_runs_definer_only ON app.backup_runs USING (false) WITH CHECK (false);
ALTER TABLE app.restore_proofs ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.restore_proofs FORCE ROW LEVEL SECURITY;
CREATE POLICY restore_proofs_definer_only ON app.restore_proofs USING (false) WITH CHECK (false);

-- What the server shows and alerts on: the last successful run of each kind, the last run's
-- outcome, and the last restore proof.
CREATE FUNCTION app.backup_status()
    RETURNS TABLE (last_full timestamptz, last_incr timestamptz, last_ok boolean,
                   last_error text, last_proof timestamptz, last_proof_ok boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT
            (SELECT max(finished_at) FROM app.backup_runs WHERE kind = 'full' AND ok),
            (SELECT max(finished_at) FROM app.backup_runs WHERE ok),
            (SELECT r.ok FROM app.backup_runs r WHERE r.finished_at IS NOT NULL
              ORDER BY r.started_at DESC LIMIT 1),
            (SELECT r.error FROM app.backup_runs r WHERE r.finished_at IS NOT NULL
              ORDER BY r.started_at DESC LIMIT 1),
            (SELECT max(p.finished_at) FROM app.restore_proofs p),
            (SELECT p.ok FROM app.restore_proofs p ORDER BY p.finished_at DESC LIMIT 1)
    $$;

RESET ROLE;

REVOKE ALL ON app.backup_runs, app.restore_proofs FROM leadgen_app, leadgen_maintenance;
GRANT SELECT ON app.backup_runs, app.restore_proofs TO leadgen_auth_definer;
ALTER FUNCTION app.backup_status() OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.backup_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.backup_status() TO leadgen_app;
