-- Campaigns: templates with merge fields, verified sender addresses, campaigns with ACLs like
-- leads', a durable per-recipient outbox, the organization's suppression list, and the events a
-- campaign's stats count (unsubscribes, bounces, complaints, opens, clicks).
--
-- The outbox holds no address: a message names its lead and the address's blind index; the
-- worker reads the lead (under the sender's ACL, so RLS decides what is sent as for any read) and
-- decrypts the address only to hand it to the relay.
SET LOCAL ROLE leadgen_owner;

-- DKIM keys, one per sending domain and selector, added by the operator (`leadgen dkim
-- generate`). The private key is sealed with the master key; the server signs with the newest
-- active key of the sender's domain.
CREATE TABLE app.dkim_keys (
    domain      text NOT NULL CHECK (domain = lower(domain) AND length(domain) BETWEEN 1 AND 253),
    selector    text NOT NULL CHECK (selector ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    algorithm   text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    key_sealed  bytea NOT NULL,
    dns_record  text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (domain, selector)
);
-- The application reads keys; only the operator's maintenance connection writes them. Every
-- instance signs for every sending domain: the keys are the operator's, not an organization's.
REVOKE INSERT, UPDATE, DELETE ON app.dkim_keys FROM leadgen_app;
ALTER TABLE app.dkim_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.dkim_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY dkim_keys_read ON app.dkim_keys FOR SELECT USING (true);

-- Addresses an organization sends from, each verified by a link mailed to it.
CREATE TABLE app.sender_identities (
    id            uuid NOT NULL,
    org_id        uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    address       text NOT NULL CHECK (length(address) BETWEEN 3 AND 254 AND address = lower(address)),
    display_name  text CHECK (length(display_name) <= 100),
    verify_sha256 bytea CHECK (length(verify_sha256) = 32),
    verified_at   timestamptz,
    created_by    uuid NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, address)
);

CREATE TABLE app.campaign_templates (
    id              uuid NOT NULL,
    org_id          uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 998),
    -- Sanitized at save: what is stored is what is sent.
    html            text CHECK (octet_length(html) <= 524288),
    text            text NOT NULL CHECK (octet_length(text) <= 262144),
    text_generated  boolean NOT NULL,
    created_by      uuid NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
);

CREATE TABLE app.campaigns (
    id              uuid NOT NULL,
    org_id          uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    template_id     uuid NOT NULL,
    sender_id       uuid NOT NULL,
    -- {"segment": id} | {"list": id} | {"query": "…"}: a search like /api/v1/leads takes.
    audience        jsonb NOT NULL CHECK (jsonb_typeof(audience) = 'object'),
    state           text NOT NULL DEFAULT 'draft'
                    CHECK (state IN ('draft', 'awaiting_approval', 'scheduled', 'sending', 'paused',
                                     'sent', 'cancelled')),
    tracking        boolean NOT NULL DEFAULT false,
    scheduled_at    timestamptz,
    time_zone       text,
    -- Who asked for the send (the audience is resolved under their ACL) and who approved it.
    send_by         uuid,
    send_role       text CHECK (send_role IN ('admin', 'manager', 'user', 'api')),
    approved_by     uuid,
    approved_at     timestamptz,
    -- Set once the recipients are in the outbox.
    resolved_at     timestamptz,
    recipients      integer NOT NULL DEFAULT 0,
    suppressed      integer NOT NULL DEFAULT 0,
    started_at      timestamptz,
    finished_at     timestamptz,
    read_groups     uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(read_groups) <= 20),
    write_groups    uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(write_groups) <= 20),
    sensitivity     text NOT NULL DEFAULT 'confidential'
                    CHECK (sensitivity IN ('public', 'internal', 'confidential', 'restricted')),
    created_by      uuid NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (id),
    FOREIGN KEY (org_id, template_id) REFERENCES app.campaign_templates (org_id, id),
    FOREIGN KEY (org_id, sender_id) REFERENCES app.sender_identities (org_id, id)
);
CREATE INDEX campaigns_work ON app.campaigns (state, scheduled_at)
    WHERE state IN ('scheduled', 'sending');

-- The outbox: one row per recipient. queued → sending (leased) → sent | deferred (4xx, retried
-- with backoff) | failed (5xx or out of attempts); suppressed when the address joined the
-- suppression list before it went out; skipped when its lead can no longer be read or has no
-- address. The row's id is its Message-ID's local part, so a retry carries the same Message-ID.
CREATE TABLE app.campaign_messages (
    id              uuid NOT NULL,
    org_id          uuid NOT NULL,
    campaign_id     uuid NOT NULL,
    lead_id         uuid NOT NULL,
    email_bidx      bytea NOT NULL CHECK (length(email_bidx) = 32),
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'suppressed', 'skipped')),
    attempts        smallint NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    sent_at         timestamptz,
    smtp_reply      text CHECK (length(smtp_reply) <= 1000),
    PRIMARY KEY (id),
    UNIQUE (campaign_id, email_bidx),
    FOREIGN KEY (org_id, campaign_id) REFERENCES app.campaigns (org_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_messages_work ON app.campaign_messages (campaign_id, id)
    WHERE state IN ('queued', 'sending', 'deferred');
CREATE INDEX campaign_messages_sent ON app.campaign_messages (org_id, sent_at) WHERE state = 'sent';

-- A UUID version 7 (RFC 9562): Unix milliseconds in the first 48 bits, random bits after. The
-- outbox's ids are these, so a campaign's recipients, inserted by one statement, sit together in
-- the indexes (random ids made resolving a large audience twice as slow). PostgreSQL 18 has
-- uuidv7(); LeadGen runs on earlier versions too.
CREATE FUNCTION app.uuid_v7() RETURNS uuid
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$
        SELECT encode(set_byte(overlay(r placing substring(
                   int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
               6, (get_byte(r, 6) & 15) | 112), 'hex')::uuid
        FROM (SELECT uuid_send(gen_random_uuid()) AS r) AS random
    $$;

-- One suppression list per organization, by the address's blind index: whatever segment an
-- address comes from, a suppressed one is never sent to, and re-importing it changes nothing.
CREATE TABLE app.suppressions (
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    email_bidx  bytea NOT NULL CHECK (length(email_bidx) = 32),
    reason      text NOT NULL CHECK (reason IN ('unsubscribed', 'hard_bounce', 'complaint', 'soft_bounces',
                                                'do_not_contact', 'erased', 'ccpa_opt_out')),
    campaign_id uuid,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, email_bidx)
);

-- What happened to sent messages, for the stats and the trail of what was sent to whom.
CREATE TABLE app.campaign_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      uuid NOT NULL,
    campaign_id uuid NOT NULL,
    message_id  uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('unsubscribed', 'hard_bounce', 'soft_bounce', 'complaint',
                                              'opened', 'clicked')),
    detail      text CHECK (length(detail) <= 2000),
    at          timestamptz NOT NULL,
    FOREIGN KEY (org_id, campaign_id) REFERENCES app.campaigns (org_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_events_campaign ON app.campaign_events (campaign_id, kind);

ALTER TABLE app.sender_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.sender_identities FORCE ROW LEVEL SECURITY;
ALTER TABLE app.campaign_templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.campaign_templates FORCE ROW LEVEL SECURITY;
ALTER TABLE app.campaigns ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.campaigns FORCE ROW LEVEL SECURITY;
ALTER TABLE app.campaign_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.campaign_messages FORCE ROW LEVEL SECURITY;
ALTER TABLE app.suppressions ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.suppressions FORCE ROW LEVEL SECURITY;
ALTER TABLE app.campaign_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.campaign_events FORCE ROW LEVEL SECURITY;

CREATE POLICY sender_identities_tenant ON app.sender_identities
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY campaign_templates_tenant ON app.campaign_templates
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY suppressions_tenant ON app.suppressions
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

-- A campaign is read like a lead: admins, or anyone when it names no read group and is not
-- restricted, or members of its read groups (an API key never reads a restricted one).
CREATE POLICY campaigns_read ON app.campaigns FOR SELECT USING (
    org_id = app.current_org_id()
    AND (
        app.current_role_name() = 'admin'
        OR (sensitivity <> 'restricted' AND read_groups = '{}')
        OR (read_groups && (SELECT app.current_groups())
            AND (sensitivity <> 'restricted' OR app.current_role_name() <> 'api'))
    )
);
CREATE POLICY campaigns_insert ON app.campaigns FOR INSERT WITH CHECK (org_id = app.current_org_id());
CREATE POLICY campaigns_update ON app.campaigns FOR UPDATE
    USING (
        org_id = app.current_org_id()
        AND (app.current_role_name() = 'admin' OR write_groups = '{}'
             OR write_groups && (SELECT app.current_groups()))
    )
    WITH CHECK (org_id = app.current_org_id());
CREATE POLICY campaigns_delete ON app.campaigns FOR DELETE
    USING (
        org_id = app.current_org_id() AND state = 'draft'
        AND (app.current_role_name() = 'admin' OR write_groups = '{}'
             OR write_groups && (SELECT app.current_groups()))
    );
-- Messages and events follow their campaign.
CREATE POLICY campaign_messages_tenant ON app.campaign_messages
    USING (org_id = app.current_org_id()
           AND EXISTS (SELECT 1 FROM app.campaigns c
                       WHERE c.org_id = campaign_messages.org_id AND c.id = campaign_messages.campaign_id))
    WITH CHECK (org_id = app.current_org_id());
CREATE POLICY campaign_events_tenant ON app.campaign_events
    USING (org_id = app.current_org_id()
           AND EXISTS (SELECT 1 FROM app.campaigns c
                       WHERE c.org_id = campaign_events.org_id AND c.id = campaign_events.campaign_id))
    WITH CHECK (org_id = app.current_org_id());

-- As for leads: only an admin at aal2 sets or changes a campaign's ACL, with the organization's
-- own groups.
CREATE FUNCTION app.campaigns_acl_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF NOT app.is_admin_aal2() THEN
            RAISE EXCEPTION 'ACL changes need an admin session at aal2' USING ERRCODE = '42501';
        END IF;
        IF EXISTS (SELECT g FROM unnest(NEW.read_groups || NEW.write_groups) g
                   WHERE NOT EXISTS (SELECT 1 FROM app.acl_groups a WHERE a.id = g AND a.org_id = NEW.org_id)) THEN
            RAISE EXCEPTION 'ACL names a group that is not this organization''s' USING ERRCODE = '23503';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER campaigns_acl_guard_insert BEFORE INSERT ON app.campaigns FOR EACH ROW
    WHEN (NEW.read_groups <> '{}' OR NEW.write_groups <> '{}' OR NEW.sensitivity <> 'confidential')
    EXECUTE FUNCTION app.campaigns_acl_guard();
CREATE TRIGGER campaigns_acl_guard_update BEFORE UPDATE ON app.campaigns FOR EACH ROW
    WHEN ((NEW.read_groups, NEW.write_groups, NEW.sensitivity)
          IS DISTINCT FROM (OLD.read_groups, OLD.write_groups, OLD.sensitivity))
    EXECUTE FUNCTION app.campaigns_acl_guard();

-- The functions below run as leadgen_auth_definer (BYPASSRLS): created by the migrating role,
-- then handed over.
RESET ROLE;

-- The delivery worker's view of what needs work, across organizations (it has no tenant context
-- until it knows the campaign): campaigns due to start or sending, with who asked for the send
-- and that principal's role now. A campaign whose sender left the organization (or whose API key
-- was revoked or expired) is paused: nobody may send in their name any more.
GRANT SELECT, UPDATE ON app.campaigns TO leadgen_auth_definer;
GRANT SELECT ON app.memberships, app.api_keys TO leadgen_auth_definer;
CREATE FUNCTION app.campaign_work(p_now timestamptz)
    RETURNS TABLE (id uuid, org_id uuid, send_by uuid, role text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        UPDATE app.campaigns c SET state = 'paused', updated_at = p_now
        WHERE c.state IN ('scheduled', 'sending')
          AND NOT EXISTS (SELECT 1 FROM app.memberships m WHERE m.org_id = c.org_id AND m.user_id = c.send_by)
          AND NOT EXISTS (SELECT 1 FROM app.api_keys k
                          WHERE k.org_id = c.org_id AND k.id = c.send_by
                            AND k.revoked_at IS NULL AND k.expires_at > p_now);
        RETURN QUERY
        SELECT c.id, c.org_id, c.send_by, coalesce(m.role, 'api')
        FROM app.campaigns c
        LEFT JOIN app.memberships m ON m.org_id = c.org_id AND m.user_id = c.send_by
        WHERE c.state = 'sending' OR (c.state = 'scheduled' AND c.scheduled_at <= p_now)
        ORDER BY c.scheduled_at NULLS FIRST, c.id;
    END
    $$;
ALTER FUNCTION app.campaign_work(timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.campaign_work(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.campaign_work(timestamptz) TO leadgen_app;

-- A recipient's unsubscribe link works without signing in: the link's signature (checked by
-- the server before this runs) names the message; this adds its address to the organization's
-- suppression list and records the event, once.
GRANT SELECT ON app.campaign_messages TO leadgen_auth_definer;
GRANT SELECT, INSERT ON app.suppressions, app.campaign_events TO leadgen_auth_definer;
GRANT SELECT ON app.organizations TO leadgen_auth_definer;
CREATE FUNCTION app.campaign_unsubscribe(p_message uuid, p_now timestamptz)
    RETURNS TABLE (org_name text, newly boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        msg record;
        added integer;
    BEGIN
        SELECT m.org_id, m.campaign_id, m.email_bidx INTO msg
        FROM app.campaign_messages m WHERE m.id = p_message;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        INSERT INTO app.suppressions (org_id, email_bidx, reason, campaign_id, created_at)
        VALUES (msg.org_id, msg.email_bidx, 'unsubscribed', msg.campaign_id, p_now)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS added = ROW_COUNT;
        IF added > 0 THEN
            INSERT INTO app.campaign_events (org_id, campaign_id, message_id, kind, at)
            VALUES (msg.org_id, msg.campaign_id, p_message, 'unsubscribed', p_now);
        END IF;
        RETURN QUERY SELECT o.name, added > 0 FROM app.organizations o WHERE o.id = msg.org_id;
    END
    $$;
ALTER FUNCTION app.campaign_unsubscribe(uuid, timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.campaign_unsubscribe(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.campaign_unsubscribe(uuid, timestamptz) TO leadgen_app;

-- What the unsubscribe page shows before the button is pressed: whose mail it was, and whether
-- the address is already off the list.
CREATE FUNCTION app.campaign_message_owner(p_message uuid)
    RETURNS TABLE (org_name text, suppressed boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT o.name, EXISTS (SELECT 1 FROM app.suppressions s
                               WHERE s.org_id = m.org_id AND s.email_bidx = m.email_bidx)
        FROM app.campaign_messages m JOIN app.organizations o ON o.id = m.org_id
        WHERE m.id = p_message
    $$;
ALTER FUNCTION app.campaign_message_owner(uuid) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.campaign_message_owner(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.campaign_message_owner(uuid) TO leadgen_app;

-- A delivery report or complaint about one of our messages (found by its Message-ID): recorded
-- once per message and kind; a hard bounce or a complaint suppresses the address at once, soft
-- bounces after `p_soft_limit` of them across the organization's campaigns.
CREATE FUNCTION app.campaign_report(p_message uuid, p_kind text, p_detail text, p_now timestamptz,
                                    p_soft_limit integer)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        msg record;
        softs integer;
    BEGIN
        SELECT m.org_id, m.campaign_id, m.email_bidx INTO msg
        FROM app.campaign_messages m WHERE m.id = p_message;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        IF EXISTS (SELECT 1 FROM app.campaign_events e
                   WHERE e.campaign_id = msg.campaign_id AND e.message_id = p_message AND e.kind = p_kind) THEN
            RETURN true;
        END IF;
        INSERT INTO app.campaign_events (org_id, campaign_id, message_id, kind, detail, at)
        VALUES (msg.org_id, msg.campaign_id, p_message, p_kind, left(p_detail, 2000), p_now);
        IF p_kind IN ('hard_bounce', 'complaint') THEN
            INSERT INTO app.suppressions (org_id, email_bidx, reason, campaign_id, created_at)
            VALUES (msg.org_id, msg.email_bidx, CASE p_kind WHEN 'complaint' THEN 'complaint' ELSE 'hard_bounce' END,
                    msg.campaign_id, p_now)
            ON CONFLICT DO NOTHING;
        ELSIF p_kind = 'soft_bounce' THEN
            SELECT count(*) INTO softs FROM app.campaign_events e
            JOIN app.campaign_messages m ON m.id = e.message_id
            WHERE e.org_id = msg.org_id AND e.kind = 'soft_bounce' AND m.email_bidx = msg.email_bidx;
            IF softs >= p_soft_limit THEN
                INSERT INTO app.suppressions (org_id, email_bidx, reason, campaign_id, created_at)
                VALUES (msg.org_id, msg.email_bidx, 'soft_bounces', msg.campaign_id, p_now)
                ON CONFLICT DO NOTHING;
            END IF;
        END IF;
        RETURN true;
    END
    $$;
ALTER FUNCTION app.campaign_report(uuid, text, text, timestamptz, integer) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.campaign_report(uuid, text, text, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.campaign_report(uuid, text, text, timestamptz, integer) TO leadgen_app;

-- A sender address is verified by the link mailed to it (no sign-in: whoever reads that
-- mailbox confirms it). The link carries the row's id and a secret whose hash is stored.
GRANT SELECT, UPDATE ON app.sender_identities TO leadgen_auth_definer;
CREATE FUNCTION app.sender_verify(p_id uuid, p_sha256 bytea, p_now timestamptz)
    RETURNS text
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE app.sender_identities SET verified_at = coalesce(verified_at, p_now)
        WHERE id = p_id AND verify_sha256 = p_sha256
        RETURNING address
    $$;
ALTER FUNCTION app.sender_verify(uuid, bytea, timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.sender_verify(uuid, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.sender_verify(uuid, bytea, timestamptz) TO leadgen_app;
