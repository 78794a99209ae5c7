-- The sign-in hold-back counts recent refusals per login and per address on every attempt.
CREATE INDEX staff_sign_in_refusals_login ON staff_sign_in_events (login, at) WHERE kind = 'refused';
CREATE INDEX staff_sign_in_refusals_address ON staff_sign_in_events (address, at) WHERE kind = 'refused';
