-- Changes to a customer's record (name, identifiers, representatives, adjustments, channels) with
-- who made them and the record before and after; and restrictions flagged for urgent review when a
-- change leaves the customer with no way in (policy 000 §5.1.1).
CREATE TABLE customer_events (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    staff_id    bigint,
    kind        text NOT NULL CHECK (kind IN ('updated', 'imported', 'no_way_in', 'way_in_restored')),
    why         text,
    before      jsonb,
    after       jsonb
);
CREATE INDEX customer_events_customer ON customer_events (customer_id, at);

CREATE FUNCTION customer_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'customer_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER customer_events_no_update BEFORE UPDATE OR DELETE ON customer_events
    FOR EACH ROW EXECUTE FUNCTION customer_events_append_only();
CREATE TRIGGER customer_events_no_truncate BEFORE TRUNCATE ON customer_events
    FOR EACH STATEMENT EXECUTE FUNCTION customer_events_append_only();

-- Where letters to the customer go (restriction letters, appeal outcomes); multi-line.
ALTER TABLE customers ADD COLUMN postal_address text NOT NULL DEFAULT ''
    CHECK (length(postal_address) <= 1000);

-- Set while the restriction leaves its customer no way in; the channels are those to route, not deflect.
ALTER TABLE restrictions
    ADD COLUMN urgent_review_since    timestamptz,
    ADD COLUMN urgent_review_why      text,
    ADD COLUMN urgent_review_channels text[] NOT NULL DEFAULT '{}';
