-- Retention (storage limitation): what each run removed, as counts and ranges, never the data itself;
-- and on a restriction, the day its incidents and reasons were removed after it ended.
CREATE TABLE retention_runs (
    id          bigserial PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    limits      jsonb NOT NULL,   -- the settings the run enforced, in months
    removed     jsonb NOT NULL    -- per kind of data: how many, and the date range they covered
);
CREATE INDEX retention_runs_started ON retention_runs (started_at);

CREATE FUNCTION retention_runs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'retention_runs is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER retention_runs_no_update BEFORE UPDATE OR DELETE ON retention_runs
    FOR EACH ROW EXECUTE FUNCTION retention_runs_append_only();
CREATE TRIGGER retention_runs_no_truncate BEFORE TRUNCATE ON retention_runs
    FOR EACH STATEMENT EXECUTE FUNCTION retention_runs_append_only();

ALTER TABLE restrictions ADD COLUMN reduced_on date;
CREATE INDEX restrictions_ended ON restrictions (valid_to) WHERE status IN ('lifted', 'lapsed') AND reduced_on IS NULL;

-- Reducing an ended restriction also strips the reasons and incidents from its events' before/after
-- snapshots. That is the one other change the audit trail permits, and only inside a transaction that
-- has said it is the retention run (SET LOCAL gateway.retention = 'on'); who, when and what kind stay.
CREATE OR REPLACE FUNCTION restriction_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- ON DELETE SET NULL from restrictions is the one permitted change: the event outlives its subject.
    IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1
       AND NEW.restriction_id IS NULL AND OLD.restriction_id IS NOT NULL
       AND (NEW.id, NEW.customer_id, NEW.at, NEW.actor, NEW.staff_id, NEW.kind, NEW.why, NEW.before::text, NEW.after::text)
           IS NOT DISTINCT FROM (OLD.id, OLD.customer_id, OLD.at, OLD.actor, OLD.staff_id, OLD.kind, OLD.why, OLD.before::text, OLD.after::text) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND current_setting('gateway.retention', true) = 'on'
       AND (NEW.id, NEW.restriction_id, NEW.customer_id, NEW.at, NEW.actor, NEW.staff_id, NEW.kind)
           IS NOT DISTINCT FROM (OLD.id, OLD.restriction_id, OLD.customer_id, OLD.at, OLD.actor, OLD.staff_id, OLD.kind) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'restriction_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
