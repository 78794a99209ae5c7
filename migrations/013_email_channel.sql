-- The email channel: threads (message ids logged or sent for a case), the outbox the gateway sends
-- mail from (acknowledgements now, letters later), and the read-through lane's marks with the case
-- history they write.

-- A message id the gateway logged (an inbound email filed on a case) or sent (an acknowledgement
-- about a case): a reply that names it in In-Reply-To / References belongs to that case.
CREATE TABLE email_threads (
    message_id text PRIMARY KEY CHECK (length(message_id) BETWEEN 1 AND 1000),
    case_id    bigint NOT NULL REFERENCES cases ON DELETE CASCADE,
    contact_id uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Mail the gateway sends, durable before it is sent: an acknowledgement is written in the same
-- statement as the contact row it answers (gateway/store/contactlog.py), so one exists exactly when
-- its contact is logged, spooled contacts included.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('acknowledgement', 'letter')),
    contact_id      uuid,
    case_id         bigint,
    to_addr         text NOT NULL CHECK (length(to_addr) BETWEEN 3 AND 320),
    subject         text NOT NULL CHECK (length(subject) <= 1000),
    body            text NOT NULL,
    message_id      text NOT NULL UNIQUE,
    in_reply_to     text,
    refs            text,
    auto_reply      boolean NOT NULL DEFAULT false,  -- RFC 3834 rate limits apply
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sent', 'suppressed', 'failed', 'refused')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    note            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'queued';
CREATE INDEX outbox_recipient ON outbox (lower(to_addr), sent_at) WHERE status = 'sent';

CREATE TABLE outbox_attachments (
    outbox_id    bigint NOT NULL REFERENCES outbox ON DELETE CASCADE,
    n            integer NOT NULL,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    content_type text NOT NULL,
    content      bytea NOT NULL,
    PRIMARY KEY (outbox_id, n)
);

-- Who looks after a case: writing with new information about it goes to them.
ALTER TABLE cases ADD COLUMN owner_id bigint REFERENCES staff ON DELETE SET NULL;

-- The case history: append-only, like the restriction and customer trails.
CREATE TABLE case_events (
    id         bigserial PRIMARY KEY,
    case_id    bigint NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    staff_id   bigint,
    kind       text NOT NULL CHECK (kind IN ('read_nothing_new', 'new_information')),
    contact_id uuid,
    note       text CHECK (length(note) <= 2000),
    target     jsonb
);
CREATE INDEX case_events_case ON case_events (case_id, at);

CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER case_events_no_update BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION case_events_append_only();
CREATE TRIGGER case_events_no_truncate BEFORE TRUNCATE ON case_events
    FOR EACH STATEMENT EXECUTE FUNCTION case_events_append_only();

-- The read-through lane: contacts about a closed case waiting for a person; one mark each.
CREATE TABLE readthrough_marks (
    contact_id uuid PRIMARY KEY,
    case_id    bigint,
    outcome    text NOT NULL CHECK (outcome IN ('read_nothing_new', 'new_information')),
    staff_id   bigint NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    note       text CHECK (length(note) <= 2000),
    target     jsonb
);
CREATE INDEX contacts_new_information ON contacts (received_at)
    WHERE target->>'id' = 'new-information' AND status = 'decided';
