-- Retention: leads with no activity for longer than their organization's retention period
-- (`retention_months` in the organization's settings; 24 by default and at most) are anonymised
-- by `leadgen retention run` (personal fields removed, the rest kept for statistics) and purged
-- a grace period after that. `anonymized_at` marks the first step; the partial indexes let each
-- run find its work without reading the leads it has nothing to do with.
SET LOCAL ROLE leadgen_owner;

ALTER TABLE app.leads ADD COLUMN anonymized_at timestamptz;
CREATE INDEX leads_retention_due ON app.leads (org_id, updated_at) WHERE anonymized_at IS NULL;
CREATE INDEX leads_retention_anonymized ON app.leads (org_id, anonymized_at)
    WHERE anonymized_at IS NOT NULL;

RESET ROLE;
