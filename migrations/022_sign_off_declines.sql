-- The person asked to sign an equality note or to approve a longer review period may decline it,
-- with a reason: the request ends and the decline is kept in the restriction's history. Every row
-- already there satisfied the narrower list this replaces, so the new check is added NOT VALID (no
-- rescan of the history under the table's lock); it applies to every row written from now on.
ALTER TABLE restriction_events DROP CONSTRAINT restriction_events_kind_check;
ALTER TABLE restriction_events ADD CONSTRAINT restriction_events_kind_check CHECK (kind IN ('created', 'amended',
    'activated', 'letter_sent', 'reviewed', 'appealed', 'appeal_decided', 'lifted', 'lapsed', 'viewed', 'exported',
    'equality_note_signed', 'review_period_approved', 'equality_note_declined', 'review_period_declined')) NOT VALID;
