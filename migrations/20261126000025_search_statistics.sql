-- The server's search asks which full-text words PostgreSQL's statistics count as common, to
-- choose between walking the newest leads and reading the full-text index (leads::search). The
-- `pg_stats` view hides a table's statistics from a role under row-level security (its common
-- values are data), so this function, owned by the BYPASSRLS definer role, returns exactly that:
-- the common words of `app.leads.search` and their frequencies across all organizations. The
-- server uses them to pick a plan and shows them to nobody; the planner itself reads the same
-- statistics for every query.
CREATE FUNCTION app.lead_search_common_words() RETURNS TABLE (word text, freq real)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT u.word, u.freq
        FROM pg_stats s,
             unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS u (word, freq)
        WHERE s.schemaname = 'app' AND s.tablename = 'leads' AND s.attname = 'search'
          AND u.word IS NOT NULL
    $$;
GRANT SELECT (search) ON app.leads TO leadgen_auth_definer;
ALTER FUNCTION app.lead_search_common_words() OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.lead_search_common_words() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.lead_search_common_words() TO leadgen_app;
