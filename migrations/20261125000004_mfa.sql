-- Multi-factor authentication: TOTP factors (secrets sealed with AES-256-GCM, bound to their row),
-- their challenges, and the step of the last accepted code so no code works twice.
SET LOCAL ROLE leadgen_owner;

CREATE TABLE app.mfa_factors (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    factor_type     text NOT NULL CHECK (factor_type = 'totp'),
    friendly_name   text CHECK (length(friendly_name) <= 100),
    status          text NOT NULL CHECK (status IN ('unverified', 'verified')),
    secret_sealed   bytea NOT NULL,
    -- Time step of the last accepted code; codes of this step or earlier are refused (replay).
    last_used_step  bigint,
    -- Time step of the last failed code; further tries wait until this step has passed.
    failed_step     bigint,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (user_id, friendly_name)
);
CREATE INDEX mfa_factors_user ON app.mfa_factors (user_id);
ALTER TABLE app.mfa_factors ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.mfa_factors FORCE ROW LEVEL SECURITY;
CREATE POLICY mfa_factors_self ON app.mfa_factors
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

CREATE TABLE app.mfa_challenges (
    id           uuid PRIMARY KEY,
    factor_id    uuid NOT NULL REFERENCES app.mfa_factors (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    verified_at  timestamptz
);
CREATE INDEX mfa_challenges_factor ON app.mfa_challenges (factor_id);
ALTER TABLE app.mfa_challenges ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.mfa_challenges FORCE ROW LEVEL SECURITY;
CREATE POLICY mfa_challenges_self ON app.mfa_challenges
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

RESET ROLE;
