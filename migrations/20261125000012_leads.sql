-- Leads, their ACLs and the keys that encrypt their personal fields.
--
-- Row-level security decides what a principal sees: the organization first, then the lead's ACL
-- (read groups and sensitivity class) against the groups the principal belongs to. So every path
-- to a lead (get, list, search, count, export) applies the same rule, in the database.
SET LOCAL ROLE leadgen_owner;

-- Data-encryption keys, wrapped (AES-256-GCM) by the master key from the server's secrets. Useless
-- without it, so no tenant policy: the server reads them at start. `purpose` = 'field' keys encrypt
-- lead fields (the highest unretired id is active); the 'blind' key computes blind indexes.
CREATE TABLE app.data_keys (
    id          integer PRIMARY KEY CHECK (id > 0),
    purpose     text NOT NULL CHECK (purpose IN ('field', 'blind')),
    wrapped     bytea NOT NULL CHECK (length(wrapped) BETWEEN 40 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE UNIQUE INDEX data_keys_one_blind ON app.data_keys (purpose) WHERE purpose = 'blind';

-- ACL groups, defined per organization.
CREATE TABLE app.acl_groups (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name),
    UNIQUE (org_id, id)
);
CREATE TABLE app.acl_group_members (
    org_id      uuid NOT NULL,
    group_id    uuid NOT NULL,
    user_id     uuid NOT NULL,
    PRIMARY KEY (group_id, user_id),
    FOREIGN KEY (org_id, group_id) REFERENCES app.acl_groups (org_id, id) ON DELETE CASCADE,
    -- Leaving the organization leaves its groups.
    FOREIGN KEY (org_id, user_id) REFERENCES app.memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX acl_group_members_user ON app.acl_group_members (org_id, user_id);

ALTER TABLE app.acl_groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.acl_groups FORCE ROW LEVEL SECURITY;
ALTER TABLE app.acl_group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.acl_group_members FORCE ROW LEVEL SECURITY;
CREATE POLICY acl_groups_tenant ON app.acl_groups
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY acl_group_members_tenant ON app.acl_group_members
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
-- Members read groups (to see why they see a lead); only admins at aal2 change them.
CREATE POLICY acl_groups_admin_insert ON app.acl_groups AS RESTRICTIVE FOR INSERT WITH CHECK (app.is_admin_aal2());
CREATE POLICY acl_groups_admin_update ON app.acl_groups AS RESTRICTIVE FOR UPDATE USING (app.is_admin_aal2());
CREATE POLICY acl_groups_admin_delete ON app.acl_groups AS RESTRICTIVE FOR DELETE USING (app.is_admin_aal2());
CREATE POLICY acl_group_members_admin_insert ON app.acl_group_members AS RESTRICTIVE FOR INSERT WITH CHECK (app.is_admin_aal2());
CREATE POLICY acl_group_members_admin_update ON app.acl_group_members AS RESTRICTIVE FOR UPDATE USING (app.is_admin_aal2());
CREATE POLICY acl_group_members_admin_delete ON app.acl_group_members AS RESTRICTIVE FOR DELETE USING (app.is_admin_aal2());

-- The groups of the transaction's principal in its organization. Policies call it as
-- `(SELECT app.current_groups())`, an init plan evaluated once per query, not once per row.
CREATE FUNCTION app.current_groups() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT coalesce(array_agg(group_id), '{}') FROM app.acl_group_members
        WHERE org_id = app.current_org_id() AND user_id = app.current_user_id()
    $$;

CREATE TABLE app.leads (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    first_name      text CHECK (length(first_name) <= 200),
    last_name       text CHECK (length(last_name) <= 200),
    title           text CHECK (length(title) <= 300),
    seniority       text CHECK (seniority IN ('owner', 'founder', 'c_level', 'partner', 'vp', 'head',
                                             'director', 'manager', 'senior', 'entry', 'intern')),
    department      text CHECK (length(department) <= 200),
    -- Personal contact fields are AES-256-GCM ciphertexts (see leadgen-crypto `field`), bound to
    -- their table, column, organization and row. The email's blind index (HMAC of the normalised
    -- address, per organization) serves exact lookups and dedupe without the plaintext.
    email_ct        bytea,
    email_bidx      bytea CHECK (length(email_bidx) = 32),
    phone_ct        bytea,
    linkedin_url    text CHECK (length(linkedin_url) <= 500),
    company_name    text CHECK (length(company_name) <= 300),
    company_domain  text CHECK (length(company_domain) <= 253),
    industry        text CHECK (length(industry) <= 200),
    employee_range  text CHECK (employee_range IN ('1-10', '11-50', '51-200', '201-500', '501-1000',
                                                   '1001-5000', '5001-10000', '10001+')),
    city            text CHECK (length(city) <= 200),
    region          text CHECK (length(region) <= 200),
    country         text CHECK (length(country) <= 100),
    source          text CHECK (length(source) <= 200),
    status          text NOT NULL DEFAULT 'new'
                    CHECK (status IN ('new', 'contacted', 'qualified', 'unqualified', 'customer', 'lost')),
    owner_id        uuid,
    tags            text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 50),
    custom          jsonb NOT NULL DEFAULT '{}'
                    CHECK (jsonb_typeof(custom) = 'object' AND octet_length(custom::text) <= 16384),
    score           smallint NOT NULL DEFAULT 0 CHECK (score BETWEEN 0 AND 100),
    do_not_contact  boolean NOT NULL DEFAULT false,
    -- ACL: empty read groups = every member may read (subject to sensitivity); a restricted lead
    -- is readable only by members of its read groups (and admins), never by an API key.
    read_groups     uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(read_groups) <= 20),
    write_groups    uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(write_groups) <= 20),
    sensitivity     text NOT NULL DEFAULT 'confidential'
                    CHECK (sensitivity IN ('public', 'internal', 'confidential', 'restricted')),
    acl_revision    integer NOT NULL DEFAULT 0,
    search          tsvector GENERATED ALWAYS AS (
                        to_tsvector('simple',
                            coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' ||
                            coalesce(title, '') || ' ' || coalesce(company_name, ''))
                    ) STORED,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (org_id, id)
);
-- One lead per email address per organization (case and spaces normalised before hashing).
CREATE UNIQUE INDEX leads_email ON app.leads (org_id, email_bidx) WHERE email_bidx IS NOT NULL;
-- Keyset pages: ids are UUIDv7, so id order is creation order.
CREATE INDEX leads_org_id ON app.leads (org_id, id DESC);
CREATE INDEX leads_org_score ON app.leads (org_id, score DESC, id DESC);
CREATE INDEX leads_search ON app.leads USING gin (search);

ALTER TABLE app.leads ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.leads FORCE ROW LEVEL SECURITY;

CREATE POLICY leads_read ON app.leads FOR SELECT USING (
    org_id = app.current_org_id()
    AND (
        app.current_role_name() = 'admin'
        OR (sensitivity <> 'restricted' AND read_groups = '{}')
        OR (read_groups && (SELECT app.current_groups())
            AND (sensitivity <> 'restricted' OR app.current_role_name() <> 'api'))
    )
);
CREATE POLICY leads_insert ON app.leads FOR INSERT WITH CHECK (org_id = app.current_org_id());
-- Writing needs reading (the SELECT policy applies too) and, when the lead names write groups,
-- membership in one of them.
CREATE POLICY leads_update ON app.leads FOR UPDATE
    USING (
        org_id = app.current_org_id()
        AND (app.current_role_name() = 'admin' OR write_groups = '{}'
             OR write_groups && (SELECT app.current_groups()))
    )
    WITH CHECK (org_id = app.current_org_id());
CREATE POLICY leads_delete ON app.leads FOR DELETE
    USING (
        org_id = app.current_org_id()
        AND (app.current_role_name() = 'admin' OR write_groups = '{}'
             OR write_groups && (SELECT app.current_groups()))
    );

-- Every ACL a lead has had, for review and rollback. Revision 0 is the default ACL (no groups,
-- confidential), which a new lead has without a row here.
CREATE TABLE app.acl_revisions (
    org_id          uuid NOT NULL,
    resource_id     uuid NOT NULL,
    revision        integer NOT NULL CHECK (revision >= 1),
    read_groups     uuid[] NOT NULL,
    write_groups    uuid[] NOT NULL,
    sensitivity     text NOT NULL,
    changed_by      uuid,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    rollback_of     integer,
    PRIMARY KEY (resource_id, revision),
    FOREIGN KEY (org_id, resource_id) REFERENCES app.leads (org_id, id) ON DELETE CASCADE
);
ALTER TABLE app.acl_revisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.acl_revisions FORCE ROW LEVEL SECURITY;
CREATE POLICY acl_revisions_read ON app.acl_revisions FOR SELECT
    USING (org_id = app.current_org_id() AND app.is_admin_aal2());
CREATE POLICY acl_revisions_insert ON app.acl_revisions FOR INSERT
    WITH CHECK (org_id = app.current_org_id() AND app.is_admin_aal2());

-- The ACL guard: only an admin at aal2 sets a non-default ACL or changes one, the groups must be
-- the organization's, and every change becomes a revision. `app.acl_rollback_of`, set for the
-- transaction by a rollback, is recorded with it.
CREATE FUNCTION app.leads_acl_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        changed boolean;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            changed := NEW.read_groups <> '{}' OR NEW.write_groups <> '{}' OR NEW.sensitivity <> 'confidential';
            NEW.acl_revision := 0;
        ELSE
            changed := (NEW.read_groups, NEW.write_groups, NEW.sensitivity)
                       IS DISTINCT FROM (OLD.read_groups, OLD.write_groups, OLD.sensitivity);
            NEW.acl_revision := OLD.acl_revision;
        END IF;
        IF NOT changed THEN
            RETURN NEW;
        END IF;
        IF NOT app.is_admin_aal2() THEN
            RAISE EXCEPTION 'ACL changes need an admin session at aal2' USING ERRCODE = '42501';
        END IF;
        IF EXISTS (SELECT g FROM unnest(NEW.read_groups || NEW.write_groups) g
                   WHERE NOT EXISTS (SELECT 1 FROM app.acl_groups a WHERE a.id = g AND a.org_id = NEW.org_id)) THEN
            RAISE EXCEPTION 'ACL names a group that is not this organization''s' USING ERRCODE = '23503';
        END IF;
        NEW.acl_revision := coalesce(
            (SELECT max(revision) FROM app.acl_revisions WHERE resource_id = NEW.id), 0) + 1;
        RETURN NEW;
    END
    $$;
CREATE FUNCTION app.leads_acl_record() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO app.acl_revisions
            (org_id, resource_id, revision, read_groups, write_groups, sensitivity, changed_by, rollback_of)
        VALUES (NEW.org_id, NEW.id, NEW.acl_revision, NEW.read_groups, NEW.write_groups, NEW.sensitivity,
                app.current_user_id(), nullif(current_setting('app.acl_rollback_of', true), '')::integer);
        RETURN NULL;
    END
    $$;
-- WHEN clauses keep the triggers out of the ordinary insert and update (an import of a million
-- leads with the default ACL never enters PL/pgSQL).
CREATE TRIGGER leads_acl_guard_insert BEFORE INSERT ON app.leads FOR EACH ROW
    WHEN (NEW.read_groups <> '{}' OR NEW.write_groups <> '{}' OR NEW.sensitivity <> 'confidential'
          OR NEW.acl_revision <> 0)
    EXECUTE FUNCTION app.leads_acl_guard();
CREATE TRIGGER leads_acl_guard_update BEFORE UPDATE ON app.leads FOR EACH ROW
    WHEN ((NEW.read_groups, NEW.write_groups, NEW.sensitivity, NEW.acl_revision)
          IS DISTINCT FROM (OLD.read_groups, OLD.write_groups, OLD.sensitivity, OLD.acl_revision))
    EXECUTE FUNCTION app.leads_acl_guard();
CREATE TRIGGER leads_acl_record_insert AFTER INSERT ON app.leads FOR EACH ROW
    WHEN (NEW.acl_revision <> 0)
    EXECUTE FUNCTION app.leads_acl_record();
CREATE TRIGGER leads_acl_record_update AFTER UPDATE ON app.leads FOR EACH ROW
    WHEN (NEW.acl_revision <> OLD.acl_revision)
    EXECUTE FUNCTION app.leads_acl_record();

RESET ROLE;

-- Keys are added, never changed by the server; retiring a key is a maintenance task.
REVOKE UPDATE, DELETE, TRUNCATE ON app.data_keys FROM leadgen_app;
REVOKE DELETE, TRUNCATE ON app.data_keys FROM leadgen_maintenance;
-- Revisions are history: nobody rewrites them.
REVOKE UPDATE, DELETE, TRUNCATE ON app.acl_revisions FROM leadgen_app, leadgen_maintenance;
