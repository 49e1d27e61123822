-- Saved searches (segments): a named query string over the leads, private to its owner or shared
-- with the organization. Running one is a search like any other, under the runner's ACL, so a
-- shared segment never shows anyone a lead they could not find themselves. Campaigns target them.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.segments (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES app.organizations (id) ON DELETE CASCADE,
    owner_id    uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    query       text NOT NULL CHECK (length(query) <= 4000),
    shared      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (org_id, owner_id, name)
);
ALTER TABLE app.segments ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.segments FORCE ROW LEVEL SECURITY;
CREATE POLICY segments_read ON app.segments FOR SELECT
    USING (org_id = app.current_org_id() AND (shared OR owner_id = app.current_user_id()));
CREATE POLICY segments_insert ON app.segments FOR INSERT
    WITH CHECK (org_id = app.current_org_id() AND owner_id = app.current_user_id());
-- The owner changes or deletes a segment; an admin may remove a shared one.
CREATE POLICY segments_write ON app.segments FOR UPDATE
    USING (org_id = app.current_org_id() AND owner_id = app.current_user_id())
    WITH CHECK (org_id = app.current_org_id() AND owner_id = app.current_user_id());
CREATE POLICY segments_delete ON app.segments FOR DELETE
    USING (org_id = app.current_org_id()
           AND (owner_id = app.current_user_id() OR (shared AND app.current_role_name() = 'admin')));

RESET ROLE;
