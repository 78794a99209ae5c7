-- A sign-in attempt is recorded as 'checking' before its password is checked, and becomes 'refused',
-- 'held_back' or 'signed_in' once it is: attempts made at once each count those under way, so a
-- burst of them gets no more guesses than attempts made one after another. An attempt left
-- 'checking' by a process that stopped counts as refused until it ages out of the hold-back window.
-- Every row already there satisfies the narrower list this replaces: the check is added NOT VALID.
ALTER TABLE staff_sign_in_events DROP CONSTRAINT staff_sign_in_events_kind_check;
ALTER TABLE staff_sign_in_events ADD CONSTRAINT staff_sign_in_events_kind_check
    CHECK (kind IN ('password_set', 'signed_in', 'refused', 'held_back', 'signed_out', 'checking')) NOT VALID;
DROP INDEX staff_sign_in_refusals_login;
DROP INDEX staff_sign_in_refusals_address;
CREATE INDEX staff_sign_in_refusals_login ON staff_sign_in_events (login, at) WHERE kind IN ('refused', 'checking');
CREATE INDEX staff_sign_in_refusals_address ON staff_sign_in_events (address, at) WHERE kind IN ('refused', 'checking');
