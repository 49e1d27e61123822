-- Card-number scanning of the platform's own free text: vulnerability reports and their notes,
-- and the early-access list. These tables are closed to every role but the definer, so the
-- scan (`leadgen pci scan`, as the maintenance role) reaches them through two narrow functions:
-- one lists only the values holding at least 13 digits (candidates; the caller checks them), the
-- other replaces one value, and only if it is still the value the scan read.
CREATE FUNCTION app.pci_platform_candidates()
    RETURNS TABLE (tbl text, col text, row_id text, value text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT 'vdp_reports', c.col, r.id::text, c.value
        FROM app.vdp_reports r
        CROSS JOIN LATERAL (VALUES ('title', r.title), ('reporter_name', r.reporter_name),
                                   ('credit_name', r.credit_name), ('endpoints', r.endpoints),
                                   ('steps', r.steps), ('impact', r.impact)) AS c (col, value)
        WHERE length(regexp_replace(c.value, '[^0-9]', '', 'g')) >= 13
        UNION ALL
        SELECT 'vdp_events', 'note', e.id::text, e.note
        FROM app.vdp_events e
        WHERE length(regexp_replace(e.note, '[^0-9]', '', 'g')) >= 13
        UNION ALL
        SELECT 'early_access', c.col, a.id::text, c.value
        FROM app.early_access a
        CROSS JOIN LATERAL (VALUES ('name', a.name), ('company', a.company)) AS c (col, value)
        WHERE length(regexp_replace(c.value, '[^0-9]', '', 'g')) >= 13
    $$;

-- Replaces one value the scan masked. The table and column come from a fixed list; anything
-- else is an error. Returns whether the row still held the value that was read.
CREATE FUNCTION app.pci_platform_mask(p_tbl text, p_col text, p_row_id text, p_old text, p_new text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        n integer;
    BEGIN
        IF length(p_new) <> length(p_old) OR p_new !~ '\*' THEN
            RAISE EXCEPTION 'a masked value keeps its length and masks something';
        END IF;
        IF (p_tbl, p_col) IN (('vdp_reports', 'title'), ('vdp_reports', 'reporter_name'),
                              ('vdp_reports', 'credit_name'), ('vdp_reports', 'endpoints'),
                              ('vdp_reports', 'steps'), ('vdp_reports', 'impact')) THEN
            EXECUTE format('UPDATE app.vdp_reports SET %I = $1 WHERE id = $2::uuid AND %I = $3', p_col, p_col)
                USING p_new, p_row_id, p_old;
        ELSIF (p_tbl, p_col) = ('vdp_events', 'note') THEN
            UPDATE app.vdp_events SET note = p_new WHERE id = p_row_id::bigint AND note = p_old;
        ELSIF (p_tbl, p_col) IN (('early_access', 'name'), ('early_access', 'company')) THEN
            EXECUTE format('UPDATE app.early_access SET %I = $1 WHERE id = $2::uuid AND %I = $3', p_col, p_col)
                USING p_new, p_row_id, p_old;
        ELSE
            RAISE EXCEPTION 'not a scanned column: %.%', p_tbl, p_col;
        END IF;
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n = 1;
    END
    $$;

ALTER FUNCTION app.pci_platform_candidates() OWNER TO leadgen_auth_definer;
ALTER FUNCTION app.pci_platform_mask(text, text, text, text, text) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.pci_platform_candidates() FROM PUBLIC;
REVOKE ALL ON FUNCTION app.pci_platform_mask(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.pci_platform_candidates() TO leadgen_maintenance;
GRANT EXECUTE ON FUNCTION app.pci_platform_mask(text, text, text, text, text) TO leadgen_maintenance;
