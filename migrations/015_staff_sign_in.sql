-- Staff sign in to the gateway's pages as themselves: a password an admin sets (scrypt, never the
-- password), browser sessions that belong to one staff member and end, and an audit of every
-- password change, sign-in, refusal and sign-out. A secret the gateway's processes share signs the
-- web form's CSRF tokens. Incident referrals from agents land with the caution leads.
CREATE TABLE staff_passwords (
    staff_id bigint PRIMARY KEY REFERENCES staff,
    login    text NOT NULL UNIQUE CHECK (length(login) BETWEEN 3 AND 320),  -- the lower-cased mailbox
    hash     text NOT NULL,                                                   -- scrypt$n$r$p$salt$digest
    set_at   timestamptz NOT NULL DEFAULT now(),
    set_by   text NOT NULL
);

CREATE TABLE staff_sessions (
    id         bigserial PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,   -- SHA-256 of the cookie's value
    staff_id   bigint NOT NULL REFERENCES staff,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    ended_at   timestamptz
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff_id) WHERE ended_at IS NULL;

CREATE TABLE staff_sign_in_events (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    staff_id bigint REFERENCES staff,
    login    text,
    kind     text NOT NULL CHECK (kind IN ('password_set', 'signed_in', 'refused', 'held_back', 'signed_out')),
    address  text,
    actor    text
);
CREATE INDEX staff_sign_in_events_staff ON staff_sign_in_events (staff_id, at);

CREATE TABLE gateway_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL CHECK (length(value) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE incident_referrals (
    id          bigserial PRIMARY KEY,
    customer_id bigint REFERENCES customers ON DELETE CASCADE,
    contact_id  uuid,
    happened_at timestamptz NOT NULL,
    what        text NOT NULL CHECK (length(what) BETWEEN 1 AND 4000),
    referred_by bigint NOT NULL REFERENCES staff,
    referred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_referrals_customer ON incident_referrals (customer_id, referred_at);
