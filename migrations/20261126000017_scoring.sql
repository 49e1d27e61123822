-- Lead scoring: one ICP model per organization (weighted rules over a lead's fields, JSON), and
-- the state of the bulk rescoring that follows each change of it. `version` counts changes;
-- `rescored_version` is the last version every lead was scored with; while they differ, a
-- worker walks the leads in id order from `rescore_after`, so a restart resumes where it stopped.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.scoring_models (
    org_id            uuid PRIMARY KEY REFERENCES app.organizations (id) ON DELETE CASCADE,
    model             jsonb NOT NULL,
    version           integer NOT NULL CHECK (version >= 1),
    rescored_version  integer NOT NULL DEFAULT 0,
    rescore_after     uuid,
    rescored_rows     bigint NOT NULL DEFAULT 0,
    rescore_lease     timestamptz,
    updated_by        uuid NOT NULL,
    updated_at        timestamptz NOT NULL,
    CHECK (rescored_version <= version)
);
ALTER TABLE app.scoring_models ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.scoring_models FORCE ROW LEVEL SECURITY;
-- Every member sees the model (it explains the scores they see); admins and managers change it.
CREATE POLICY scoring_read ON app.scoring_models FOR SELECT
    USING (org_id = app.current_org_id());
CREATE POLICY scoring_insert ON app.scoring_models FOR INSERT
    WITH CHECK (org_id = app.current_org_id() AND app.current_role_name() IN ('admin', 'manager'));
CREATE POLICY scoring_update ON app.scoring_models FOR UPDATE
    USING (org_id = app.current_org_id() AND app.current_role_name() IN ('admin', 'manager'))
    WITH CHECK (org_id = app.current_org_id() AND app.current_role_name() IN ('admin', 'manager'));

RESET ROLE;

GRANT SELECT, UPDATE ON app.scoring_models TO leadgen_auth_definer;

-- The next organization whose leads need rescoring, across organizations (the worker has no
-- tenant yet). Leased for `p_lease_secs` so one instance works on it at a time. The job then
-- runs as an admin of that organization: scores are org-wide, whatever the ACL of the member
-- who changed the model, and the job writes nothing but `score`.
CREATE FUNCTION app.rescore_claim(p_now timestamptz, p_lease_secs integer)
    RETURNS TABLE (org_id uuid, version integer, rescore_after uuid, actor uuid)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.scoring_models s
           SET rescore_lease = p_now + make_interval(secs => p_lease_secs)
         WHERE s.org_id = (SELECT c.org_id FROM app.scoring_models c
                           WHERE c.rescored_version < c.version
                             AND (c.rescore_lease IS NULL OR c.rescore_lease < p_now)
                           ORDER BY c.updated_at LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING s.org_id, s.version, s.rescore_after, s.updated_by;
    $$;
ALTER FUNCTION app.rescore_claim(timestamptz, integer) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.rescore_claim(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.rescore_claim(timestamptz, integer) TO leadgen_app;
