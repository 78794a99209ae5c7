-- A manager's equality note and an approver's longer review period are signed off by that person,
-- signed in, not taken on the recording caution lead's word. Until they sign, what was asked waits
-- here: `equality_note` and `review_approver` hold only what was signed (as before, so every reader
-- of them keeps its meaning), and a restriction whose equality note awaits its signature is not
-- activated. A longer review period awaiting approval leaves the default review date in force.
-- Notes and approvers recorded before this change stand as recorded on a restriction already in
-- force; on one still proposed (not enforced yet) a note becomes a request to its manager, so it is
-- not activated on a signature nobody gave.
ALTER TABLE restrictions
    ADD COLUMN equality_note_asked jsonb,
    ADD COLUMN review_period_asked jsonb;
ALTER TABLE restriction_events DROP CONSTRAINT restriction_events_kind_check;
ALTER TABLE restriction_events ADD CONSTRAINT restriction_events_kind_check CHECK (kind IN ('created', 'amended',
    'activated', 'letter_sent', 'reviewed', 'appealed', 'appeal_decided', 'lifted', 'lapsed', 'viewed', 'exported',
    'equality_note_signed', 'review_period_approved'));
UPDATE restrictions
   SET equality_note_asked = jsonb_build_object('staff_id', equality_note->'staff_id', 'note', equality_note->'note',
                                                'asked_by', NULL, 'asked_on', created_at::date),
       equality_note = NULL
 WHERE status = 'proposed' AND equality_note IS NOT NULL;
