-- Security Policy: "MFA is mandatory for administrative roles responsible for lead scoring, data
-- exports, or any critical system modifications." The extractors refuse such requests below aal2;
-- the database refuses them too, so a route that forgot cannot slip through.

SET LOCAL ROLE leadgen_owner;

-- Export jobs: created only from a session at aal2 (the worker that runs them only updates).
CREATE POLICY export_jobs_need_aal2 ON app.export_jobs AS RESTRICTIVE FOR INSERT
    WITH CHECK (app.current_aal() = 'aal2');

-- The scoring model: a new model, or a change of the model itself, only at aal2. The rescoring
-- worker updates the progress columns of the same row as its own tenant session at aal1, so this
-- is a trigger on the model column rather than a policy on every update.
CREATE FUNCTION app.scoring_model_needs_aal2() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (TG_OP = 'INSERT' OR NEW.model IS DISTINCT FROM OLD.model)
       AND app.current_aal() IS DISTINCT FROM 'aal2' THEN
        RAISE EXCEPTION 'changing the scoring model needs a session at aal2'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER scoring_model_needs_aal2 BEFORE INSERT OR UPDATE ON app.scoring_models
    FOR EACH ROW EXECUTE FUNCTION app.scoring_model_needs_aal2();

RESET ROLE;
