-- How each session was authenticated (the `amr` claim: password, oauth, recovery, totp… with
-- times), kept with the session so refreshed access tokens say the same as the first one.
SET LOCAL ROLE leadgen_owner;
ALTER TABLE app.sessions ADD COLUMN amr jsonb NOT NULL DEFAULT '[]'::jsonb
    CHECK (jsonb_typeof(amr) = 'array' AND octet_length(amr::text) <= 4096);
RESET ROLE;
