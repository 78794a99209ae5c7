-- A key for a person belongs to one staff member: what it may do follows that member's role and
-- ends when they are made inactive. System keys (channel, admin) belong to no one. Keys made before
-- this have no staff member; the gateway lets those person-role keys read only.
ALTER TABLE api_keys ADD COLUMN staff_id bigint REFERENCES staff;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_system_keys_belong_to_no_one
    CHECK (staff_id IS NULL OR role NOT IN ('channel', 'admin'));
CREATE INDEX api_keys_staff ON api_keys (staff_id) WHERE staff_id IS NOT NULL;

-- The staff member signed in when an event was recorded (none for system actors and for keys that
-- belong to no one); `actor` keeps the readable label.
ALTER TABLE restriction_events ADD COLUMN staff_id bigint REFERENCES staff;
CREATE INDEX restriction_events_staff ON restriction_events (staff_id, at) WHERE staff_id IS NOT NULL;

CREATE OR REPLACE FUNCTION restriction_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- ON DELETE SET NULL from restrictions is the one permitted change: the event outlives its subject.
    IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1
       AND NEW.restriction_id IS NULL AND OLD.restriction_id IS NOT NULL
       AND (NEW.id, NEW.customer_id, NEW.at, NEW.actor, NEW.staff_id, NEW.kind, NEW.why, NEW.before::text, NEW.after::text)
           IS NOT DISTINCT FROM (OLD.id, OLD.customer_id, OLD.at, OLD.actor, OLD.staff_id, OLD.kind, OLD.why, OLD.before::text, OLD.after::text) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'restriction_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
