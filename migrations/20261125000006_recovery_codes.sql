-- MFA recovery codes: a `recovery_code` factor per user (it appears in `user.factors` like
-- Supabase's) holding ten single-use codes, stored as SHA-256 hashes (each code has 80 random
-- bits, so a fast hash is enough; bcrypt would only slow sign-in).
SET LOCAL ROLE leadgen_owner;

ALTER TABLE app.mfa_factors DROP CONSTRAINT mfa_factors_factor_type_check;
ALTER TABLE app.mfa_factors ADD CONSTRAINT mfa_factors_factor_type_check
    CHECK (factor_type IN ('totp', 'recovery_code'));
-- A recovery-code factor has no shared secret.
ALTER TABLE app.mfa_factors ALTER COLUMN secret_sealed DROP NOT NULL;
ALTER TABLE app.mfa_factors ADD CONSTRAINT mfa_factors_secret_for_totp
    CHECK ((factor_type = 'totp') = (secret_sealed IS NOT NULL));
-- One set of recovery codes per user.
CREATE UNIQUE INDEX mfa_factors_one_recovery_set ON app.mfa_factors (user_id) WHERE factor_type = 'recovery_code';

CREATE TABLE app.recovery_codes (
    factor_id  uuid NOT NULL REFERENCES app.mfa_factors (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL CHECK (length(code_hash) = 32),
    used_at    timestamptz,
    PRIMARY KEY (factor_id, code_hash)
);
CREATE INDEX recovery_codes_user ON app.recovery_codes (user_id);
ALTER TABLE app.recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.recovery_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY recovery_codes_self ON app.recovery_codes
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

RESET ROLE;
