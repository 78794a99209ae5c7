-- Who made and who revoked each API key, and when: the keys' own audit trail. A key is a
-- credential, so its history is kept like a restriction's: append-only. `actor` is the readable
-- label (an admin key, a signed-in staff member, the command line); `staff_id` the staff member
-- behind it when a person acted.
CREATE TABLE api_key_events (
    id       bigserial PRIMARY KEY,
    key_id   bigint NOT NULL REFERENCES api_keys (id),
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    staff_id bigint REFERENCES staff,
    kind     text NOT NULL CHECK (kind IN ('created', 'revoked'))
);
CREATE INDEX api_key_events_key ON api_key_events (key_id, at);

-- One trigger function for every append-only table from here on: it names the table it refuses for.
CREATE FUNCTION refuse_change_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER api_key_events_no_update BEFORE UPDATE OR DELETE ON api_key_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change_append_only();
CREATE TRIGGER api_key_events_no_truncate BEFORE TRUNCATE ON api_key_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_append_only();

-- Keys made before this trail: what is known of them (when), not who.
INSERT INTO api_key_events (key_id, at, actor, kind)
    SELECT id, created_at, 'unknown (made before keys were audited)', 'created' FROM api_keys;
INSERT INTO api_key_events (key_id, at, actor, kind)
    SELECT id, revoked_at, 'unknown (revoked before keys were audited)', 'revoked' FROM api_keys
    WHERE revoked_at IS NOT NULL;
