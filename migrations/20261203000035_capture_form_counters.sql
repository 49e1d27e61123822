-- Capture-form counters off the submission's transaction. A submission used to bump its form's
-- `submissions` and `conversions` inside the transaction that stores the lead, so every
-- submission to a form queued on that one row until the previous one's commit reached the disk.
-- The counters are statistics, not records: the server now counts after the lead is committed,
-- in a short transaction that does not wait for the disk (`synchronous_commit = off`), through
-- this function, which takes two more kinds.
CREATE OR REPLACE FUNCTION app.capture_form_count(p_form uuid, p_kind text)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.capture_forms f
        SET views = f.views + (p_kind = 'view')::int,
            spam = f.spam + (p_kind = 'spam')::int,
            submissions = f.submissions + (p_kind IN ('submission', 'conversion'))::int,
            conversions = f.conversions + (p_kind = 'conversion')::int
        WHERE f.id = p_form
    $$;
