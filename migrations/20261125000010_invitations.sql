-- Invitations: an admin invites an address with a role; the person with that (confirmed) address
-- accepts once, before the invitation expires, and becomes a member.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.invitations (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    email        text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320),
    role         text NOT NULL CHECK (role IN ('admin', 'manager', 'user', 'api')),
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    invited_by   uuid REFERENCES app.users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid REFERENCES app.users (id) ON DELETE SET NULL,
    revoked_at   timestamptz
);
CREATE INDEX invitations_org ON app.invitations (org_id);
ALTER TABLE app.invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY invitations_tenant ON app.invitations
    USING (org_id = app.current_org_id())
    WITH CHECK (org_id = app.current_org_id());
CREATE POLICY invitations_admin ON app.invitations AS RESTRICTIVE
    USING (app.is_admin_aal2())
    WITH CHECK (app.is_admin_aal2());

RESET ROLE;

GRANT SELECT, UPDATE ON app.invitations TO leadgen_auth_definer;

-- Accepts an invitation for the user in the transaction's context. Refuses (with a message the
-- server maps to a status) an unknown, used, revoked or expired invitation, one for another
-- address, an unconfirmed address, and an existing member.
CREATE FUNCTION app.invitation_accept(p_hash bytea, p_now timestamptz)
    RETURNS TABLE (org_id uuid, role text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        inv app.invitations;
        me app.users;
    BEGIN
        SELECT * INTO me FROM app.users u WHERE u.id = app.current_user_id();
        IF me.id IS NULL THEN
            RAISE EXCEPTION 'invitation: no user' USING ERRCODE = 'P0001';
        END IF;
        SELECT * INTO inv FROM app.invitations i WHERE i.token_hash = p_hash FOR UPDATE;
        IF inv.id IS NULL OR inv.accepted_at IS NOT NULL OR inv.revoked_at IS NOT NULL OR inv.expires_at <= p_now THEN
            RAISE EXCEPTION 'invitation: invalid' USING ERRCODE = 'P0001';
        END IF;
        IF inv.email <> me.email OR me.email_confirmed_at IS NULL THEN
            RAISE EXCEPTION 'invitation: other address' USING ERRCODE = 'P0001';
        END IF;
        IF EXISTS (SELECT 1 FROM app.memberships m WHERE m.org_id = inv.org_id AND m.user_id = me.id) THEN
            RAISE EXCEPTION 'invitation: already member' USING ERRCODE = 'P0001';
        END IF;
        INSERT INTO app.memberships (org_id, user_id, role) VALUES (inv.org_id, me.id, inv.role);
        UPDATE app.invitations SET accepted_at = p_now, accepted_by = me.id WHERE id = inv.id;
        RETURN QUERY SELECT inv.org_id, inv.role;
    END
    $$;
ALTER FUNCTION app.invitation_accept(bytea, timestamptz) OWNER TO leadgen_auth_definer;
REVOKE ALL ON FUNCTION app.invitation_accept(bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.invitation_accept(bytea, timestamptz) TO leadgen_app;
