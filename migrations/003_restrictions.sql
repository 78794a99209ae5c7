-- A copy of every restriction letter as sent: what the customer was told is part of the record.
CREATE TABLE restriction_letters (
    id             bigserial PRIMARY KEY,
    restriction_id bigint NOT NULL REFERENCES restrictions ON DELETE CASCADE,
    sent_on        date NOT NULL,
    method         text NOT NULL CHECK (method IN ('post', 'email', 'hand', 'other')),
    note           text,
    body_text      text NOT NULL,
    body_html      text NOT NULL,
    recorded_by    text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX restriction_letters_restriction ON restriction_letters (restriction_id, id);
-- At most one undecided appeal per restriction, whatever the interleaving of requests.
CREATE UNIQUE INDEX appeals_one_open ON appeals (restriction_id) WHERE outcome IS NULL;
