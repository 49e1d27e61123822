-- The foreign key from a lead to its company checked every imported row on its own (a lookup
-- and a row lock per lead, run as a trigger at the end of each statement): with the key to the
-- organization, 14 % of the database's time in a million-row import (perf), half of it this one.
-- Links are made only by the import (from companies it has just read in the same transaction)
-- and by the trigger `leads_link_company`; a deleted company's leads are unlinked by
-- `app.company_unlink` in the deleting transaction. A link to a company deleted by a race with
-- an import batch points at nothing: its lead shows no company, which is what the deletion meant.
ALTER TABLE app.leads DROP CONSTRAINT leads_company_fkey;

-- Unlinks every lead of one company of the transaction's organization, whoever may read each
-- lead (the link is the company's); it writes `company_id` only.
CREATE FUNCTION app.company_unlink(p_company uuid) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.leads SET company_id = NULL
        WHERE org_id = app.current_org_id() AND company_id = p_company
    $$;
GRANT SELECT (org_id, company_id), UPDATE (company_id) ON app.leads TO leadgen_auth_definer;
ALTER FUNCTION app.company_unlink(uuid) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.company_unlink(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.company_unlink(uuid) TO leadgen_app;
