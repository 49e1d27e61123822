-- Opens and clicks of campaigns that turn tracking on (off by default): first-party links
-- signed by the server, recorded once per message, kind and link, without signing in.
CREATE INDEX campaign_events_message ON app.campaign_events (message_id, kind);

CREATE FUNCTION app.campaign_track(p_message uuid, p_kind text, p_detail text, p_now timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        msg record;
    BEGIN
        IF p_kind NOT IN ('opened', 'clicked') THEN
            RETURN false;
        END IF;
        SELECT m.org_id, m.campaign_id INTO msg
        FROM app.campaign_messages m
        JOIN app.campaigns c ON c.org_id = m.org_id AND c.id = m.campaign_id
        WHERE m.id = p_message AND c.tracking;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM app.campaign_events e
                       WHERE e.message_id = p_message AND e.kind = p_kind
                         AND e.detail IS NOT DISTINCT FROM p_detail) THEN
            INSERT INTO app.campaign_events (org_id, campaign_id, message_id, kind, detail, at)
            VALUES (msg.org_id, msg.campaign_id, p_message, p_kind, left(p_detail, 2000), p_now);
        END IF;
        RETURN true;
    END
    $$;
ALTER FUNCTION app.campaign_track(uuid, text, text, timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.campaign_track(uuid, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.campaign_track(uuid, text, text, timestamptz) TO leadgen_app;

-- Messages the relay took that a worker noted in its local journal but had not yet recorded when
-- it stopped (a crash): recorded as sent when the instance starts again, so they are not sent a
-- second time. Only a message still claimed or waiting changes.
GRANT UPDATE ON app.campaign_messages TO leadgen_auth_definer;
CREATE FUNCTION app.campaign_mark_sent(p_ids uuid[], p_now timestamptz)
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        WITH done AS (
            UPDATE app.campaign_messages SET state = 'sent', sent_at = p_now, lease_until = NULL,
                   smtp_reply = NULL
            WHERE id = ANY(p_ids) AND state IN ('sending', 'queued', 'deferred')
            RETURNING 1)
        SELECT count(*)::integer FROM done
    $$;
ALTER FUNCTION app.campaign_mark_sent(uuid[], timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.campaign_mark_sent(uuid[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.campaign_mark_sent(uuid[], timestamptz) TO leadgen_app;
