-- Managers author rule sets: drafts (copied from an earlier version, edited until published), an
-- append-only history of who drafted, edited, published or rolled back which version, when and why,
-- and what-if simulations over the contact log (their progress is polled from any gateway process).
ALTER TABLE rulesets
    ADD COLUMN based_on   integer REFERENCES rulesets (version),
    ADD COLUMN updated_by text,
    ADD COLUMN updated_at timestamptz;

CREATE TABLE ruleset_events (
    id       bigserial PRIMARY KEY,
    version  integer NOT NULL REFERENCES rulesets (version),
    kind     text NOT NULL CHECK (kind IN ('drafted', 'edited', 'published', 'rolled_back')),
    actor    text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    why      text,
    previous integer              -- the version in force before a publish or rollback
);
CREATE INDEX ruleset_events_version ON ruleset_events (version, at);

CREATE FUNCTION ruleset_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ruleset_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ruleset_events_no_update BEFORE UPDATE OR DELETE ON ruleset_events
    FOR EACH ROW EXECUTE FUNCTION ruleset_events_append_only();
CREATE TRIGGER ruleset_events_no_truncate BEFORE TRUNCATE ON ruleset_events
    FOR EACH STATEMENT EXECUTE FUNCTION ruleset_events_append_only();

INSERT INTO ruleset_events (version, kind, actor, at, why)
SELECT version, 'published', created_by, coalesce(published_at, created_at), note FROM rulesets WHERE published;

CREATE TABLE ruleset_simulations (
    id          bigserial PRIMARY KEY,
    version     integer NOT NULL REFERENCES rulesets (version),
    against     integer NOT NULL REFERENCES rulesets (version),
    params      jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    done        bigint NOT NULL DEFAULT 0,
    total       bigint NOT NULL DEFAULT 0,
    result      jsonb,
    error       text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
