-- Companies: one record per organization and normalised domain (name, NAICS code and industry,
-- employee range, revenue, technologies, location). Leads link to their company and keep a copy
-- of its name, domain, industry and size, which search filters and scoring read without a join.
-- Editing a company pushes those fields down to all of its leads (`version` counts edits,
-- `leads_version` is the last one its leads have; a worker finishes a push a crash interrupted).
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.companies (
    id              uuid NOT NULL,
    org_id          uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    name            text CHECK (length(name) BETWEEN 1 AND 300),
    domain          text CHECK (length(domain) BETWEEN 3 AND 253),
    naics           text CHECK (naics ~ '^[0-9]{2,6}$'),
    industry        text CHECK (length(industry) <= 200),
    employee_range  text CHECK (employee_range IN ('1-10', '11-50', '51-200', '201-500', '501-1000',
                                                   '1001-5000', '5001-10000', '10001+')),
    -- Annual revenue in US dollars.
    annual_revenue  bigint CHECK (annual_revenue >= 0),
    technologies    text[] NOT NULL DEFAULT '{}' CHECK (cardinality(technologies) <= 100),
    city            text CHECK (length(city) <= 200),
    region          text CHECK (length(region) <= 200),
    country         text CHECK (length(country) <= 100),
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    leads_version   integer NOT NULL DEFAULT 1,
    updated_by      uuid,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CHECK (name IS NOT NULL OR domain IS NOT NULL),
    CHECK (leads_version <= version)
);
CREATE UNIQUE INDEX companies_domain ON app.companies (org_id, domain) WHERE domain IS NOT NULL;
CREATE INDEX companies_name ON app.companies (org_id, lower(name), id);
-- Pushes still to do (normally none: the edit's own request does it).
CREATE INDEX companies_unpushed ON app.companies (updated_at) WHERE leads_version < version;

ALTER TABLE app.companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.companies FORCE ROW LEVEL SECURITY;
-- Company records are the organization's, not a person's: every member reads and writes them
-- (Lead Search & Management is every role's); deleting one is for admins and managers.
CREATE POLICY companies_tenant ON app.companies
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY companies_delete ON app.companies AS RESTRICTIVE FOR DELETE
    USING ((SELECT app.current_role_name()) IN ('admin', 'manager'));

ALTER TABLE app.leads ADD COLUMN company_id uuid;
-- Deleting a company unlinks its leads; they keep their copy of its fields.
ALTER TABLE app.leads ADD CONSTRAINT leads_company_fkey
    FOREIGN KEY (org_id, company_id) REFERENCES app.companies (org_id, id) ON DELETE SET NULL (company_id);
CREATE INDEX leads_company ON app.leads (org_id, company_id) WHERE company_id IS NOT NULL;

-- A lead written with a domain and no company (the API, a merge, an import's update that moves a
-- lead to another domain) is linked to that domain's company, which is created from the lead's
-- fields when the organization has none. Imports link their batches themselves, so a million
-- new leads never enter PL/pgSQL.
CREATE FUNCTION app.leads_link_company() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        found uuid;
    BEGIN
        IF NEW.company_domain IS NULL THEN
            NEW.company_id := NULL;
            RETURN NEW;
        END IF;
        SELECT c.id INTO found FROM app.companies c
         WHERE c.org_id = NEW.org_id AND c.domain = NEW.company_domain;
        IF found IS NULL THEN
            INSERT INTO app.companies (id, org_id, name, domain, industry, employee_range,
                                       updated_by, created_at, updated_at)
            VALUES (gen_random_uuid(), NEW.org_id, NEW.company_name, NEW.company_domain,
                    NEW.industry, NEW.employee_range, app.current_user_id(), now(), now())
            ON CONFLICT (org_id, domain) WHERE domain IS NOT NULL DO NOTHING
            RETURNING id INTO found;
            IF found IS NULL THEN
                SELECT c.id INTO found FROM app.companies c
                 WHERE c.org_id = NEW.org_id AND c.domain = NEW.company_domain;
            END IF;
        END IF;
        NEW.company_id := found;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER leads_link_company_insert BEFORE INSERT ON app.leads FOR EACH ROW
    WHEN (NEW.company_domain IS NOT NULL AND NEW.company_id IS NULL)
    EXECUTE FUNCTION app.leads_link_company();
CREATE TRIGGER leads_link_company_update BEFORE UPDATE OF company_domain ON app.leads FOR EACH ROW
    WHEN (NEW.company_domain IS DISTINCT FROM OLD.company_domain
          AND NEW.company_id IS NOT DISTINCT FROM OLD.company_id)
    EXECUTE FUNCTION app.leads_link_company();

RESET ROLE;

-- The leads there are: one company per organization and domain, from the first lead (in id
-- order) that names it.
INSERT INTO app.companies (id, org_id, name, domain, industry, employee_range, created_at, updated_at)
SELECT gen_random_uuid(), org_id, company_name, company_domain, industry, employee_range, now(), now()
FROM (SELECT DISTINCT ON (org_id, company_domain) org_id, company_name, company_domain, industry,
             employee_range
      FROM app.leads WHERE company_domain IS NOT NULL
      ORDER BY org_id, company_domain, id) first;
UPDATE app.leads l SET company_id = c.id
FROM app.companies c
WHERE c.org_id = l.org_id AND c.domain = l.company_domain AND l.company_domain IS NOT NULL;

-- Companies whose push to their leads was interrupted, across organizations (the worker has no
-- tenant yet); it then pushes each as an admin of its organization, like rescoring: the copied
-- fields are the company's, whoever may read each lead.
CREATE FUNCTION app.companies_unpushed(p_before timestamptz, p_limit integer)
    RETURNS TABLE (org_id uuid, id uuid, actor uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT c.org_id, c.id, c.updated_by FROM app.companies c
        WHERE c.leads_version < c.version AND c.updated_at < p_before
        ORDER BY c.updated_at LIMIT p_limit
    $$;
GRANT SELECT ON app.companies TO leadgen_auth_definer;
ALTER FUNCTION app.companies_unpushed(timestamptz, integer) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.companies_unpushed(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.companies_unpushed(timestamptz, integer) TO leadgen_app;
