-- An export job is written by the instance that started it, which renews `lease_until` while it
-- writes. A job still `running` past its lease lost its writer (the server stopped): whoever reads
-- it next records it as failed, with the reason in `error`, instead of showing it running forever.
SET LOCAL ROLE leadgen_owner;

ALTER TABLE app.export_jobs ADD COLUMN lease_until timestamptz;
ALTER TABLE app.export_jobs ADD COLUMN error text CHECK (length(error) <= 1000);
UPDATE app.export_jobs SET lease_until = created_at WHERE status = 'running';

RESET ROLE;
