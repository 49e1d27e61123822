-- The text encoding an import's file is read in: detected at upload (a byte-order mark, valid
-- UTF-8, or the legacy code page a detector guesses), changeable by the user before the start.
ALTER TABLE app.import_jobs
    ADD COLUMN encoding text NOT NULL DEFAULT 'UTF-8';
