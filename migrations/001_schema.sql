-- The whole domain of DESIGN.md §2-3: people, restrictions and their audit, rule sets, keys, the contact log.

CREATE TABLE staff (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('agent', 'caution_lead', 'service_caution_lead',
                                                'manager', 'senior_manager')),
    line          text,            -- E.164 phone line
    voicemail     text,            -- E.164 voicemail number, used outside working hours
    mailbox       text,            -- lower-cased email address
    queue         text,
    working_hours jsonb NOT NULL DEFAULT '[]',
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    id            bigserial PRIMARY KEY,
    external_ref  text UNIQUE CHECK (length(external_ref) BETWEEN 1 AND 100),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    open_channels text[] NOT NULL DEFAULT '{}',   -- channels always open to them
    adjustments   jsonb NOT NULL DEFAULT '{"text": "", "flags": []}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE representatives (
    id            bigserial PRIMARY KEY,
    customer_id   bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    relationship  text NOT NULL CHECK (length(relationship) BETWEEN 1 AND 100),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX representatives_customer ON representatives (customer_id);

-- A normalised handle that reaches a customer directly, or a representative acting for one.
-- One phone may reach several customers (a household), so (kind, value) alone is not unique;
-- the same handle twice on one person is, and a web account belongs to one person only.
CREATE TABLE identifiers (
    id                bigserial PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('phone', 'email', 'web')),
    value             text NOT NULL CHECK (length(value) BETWEEN 1 AND 320),
    customer_id       bigint REFERENCES customers ON DELETE CASCADE,
    representative_id bigint REFERENCES representatives ON DELETE CASCADE,
    CHECK ((customer_id IS NULL) <> (representative_id IS NULL))
);
CREATE UNIQUE INDEX identifiers_customer_unique ON identifiers (kind, value, customer_id)
    WHERE customer_id IS NOT NULL;
CREATE UNIQUE INDEX identifiers_representative_unique ON identifiers (kind, value, representative_id)
    WHERE representative_id IS NOT NULL;
CREATE UNIQUE INDEX identifiers_web_unique ON identifiers (value) WHERE kind = 'web';
CREATE INDEX identifiers_lookup ON identifiers (kind, value);

CREATE TABLE cases (
    id             bigserial PRIMARY KEY,
    customer_id    bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    reference      text NOT NULL UNIQUE CHECK (length(reference) BETWEEN 1 AND 50),
    subject        text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'exhausted')),
    closed_on      date,
    outcome_letter text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (status = 'open' OR closed_on IS NOT NULL)
);
CREATE INDEX cases_customer ON cases (customer_id);

CREATE TABLE restrictions (
    id              bigserial PRIMARY KEY,
    customer_id     bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('set_times', 'named_contact', 'written_only',
                        'no_personal_contact', 'appointment_only', 'closed_issue', 'caution',
                        'contact_limit')),
    params          jsonb NOT NULL DEFAULT '{}',
    channels        text[] NOT NULL,
    reason_category text NOT NULL CHECK (reason_category IN ('aggressive_or_abusive',
                        'unreasonable_demands', 'unreasonable_persistence')),
    reasons         text NOT NULL CHECK (length(reasons) > 0),
    incidents       jsonb NOT NULL,               -- [{on: date, description: text}, ...]
    warned_on       date,
    immediate_risk  text,
    deciders        bigint[] NOT NULL DEFAULT '{}',
    decided_on      date,
    valid_from      date NOT NULL,
    valid_to        date,
    review_due      date NOT NULL,
    review_approver bigint REFERENCES staff,
    adjustments     text NOT NULL DEFAULT '',     -- reasonable adjustments made for this restriction
    equality_note   jsonb,                        -- {staff_id, note, on} signed by a manager
    letter_sent_on  date,
    status          text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'active',
                        'under_appeal', 'lifted', 'lapsed')),
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (warned_on IS NOT NULL OR immediate_risk IS NOT NULL),
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE INDEX restrictions_customer ON restrictions (customer_id);
CREATE INDEX restrictions_enforced ON restrictions (status) WHERE status IN ('active', 'under_appeal');
CREATE INDEX restrictions_review_due ON restrictions (review_due) WHERE status IN ('active', 'under_appeal', 'proposed');

CREATE TABLE appeals (
    id             bigserial PRIMARY KEY,
    restriction_id bigint NOT NULL REFERENCES restrictions ON DELETE CASCADE,
    lodged_on      date NOT NULL,
    grounds        text NOT NULL CHECK (length(grounds) > 0),
    due_on         date NOT NULL,
    decided_by     bigint REFERENCES staff,
    decided_on     date,
    outcome        text CHECK (outcome IN ('upheld', 'varied', 'lifted')),
    notes          text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX appeals_restriction ON appeals (restriction_id);

-- Append-only audit trail: who did what to a restriction, and every read of its full record.
CREATE TABLE restriction_events (
    id             bigserial PRIMARY KEY,
    restriction_id bigint REFERENCES restrictions ON DELETE SET NULL,
    customer_id    bigint,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('created', 'amended', 'activated', 'letter_sent',
                        'reviewed', 'appealed', 'appeal_decided', 'lifted', 'lapsed', 'viewed',
                        'exported')),
    why            text,
    before         jsonb,
    after          jsonb
);
CREATE INDEX restriction_events_restriction ON restriction_events (restriction_id, at);
CREATE INDEX restriction_events_customer ON restriction_events (customer_id, at);

CREATE FUNCTION restriction_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- ON DELETE SET NULL from restrictions is the one permitted change: the event outlives its subject.
    IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1
       AND NEW.restriction_id IS NULL AND OLD.restriction_id IS NOT NULL
       AND (NEW.id, NEW.customer_id, NEW.at, NEW.actor, NEW.kind, NEW.why, NEW.before::text, NEW.after::text)
           IS NOT DISTINCT FROM (OLD.id, OLD.customer_id, OLD.at, OLD.actor, OLD.kind, OLD.why, OLD.before::text, OLD.after::text) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'restriction_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER restriction_events_no_update BEFORE UPDATE OR DELETE ON restriction_events
    FOR EACH ROW EXECUTE FUNCTION restriction_events_append_only();
CREATE TRIGGER restriction_events_no_truncate BEFORE TRUNCATE ON restriction_events
    FOR EACH STATEMENT EXECUTE FUNCTION restriction_events_append_only();

-- Provider closures on top of the statutory bank holidays (e.g. the office Christmas shutdown).
CREATE TABLE closures (
    day    date PRIMARY KEY,
    reason text NOT NULL
);

CREATE TABLE rulesets (
    version      serial PRIMARY KEY,
    rules        jsonb NOT NULL,
    tests        jsonb NOT NULL DEFAULT '[]',
    note         text NOT NULL DEFAULT '',
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published    boolean NOT NULL DEFAULT false,
    published_at timestamptz
);
CREATE UNIQUE INDEX rulesets_one_published ON rulesets ((true)) WHERE published;

CREATE TABLE api_keys (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role       text NOT NULL CHECK (role IN ('channel', 'agent', 'manager', 'caution_lead', 'admin')),
    hash       bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- One row per inbound contact, partitioned by the month it was received.
CREATE TABLE contacts (
    id              uuid NOT NULL,
    received_at     timestamptz NOT NULL,
    logged_at       timestamptz NOT NULL DEFAULT now(),
    channel         text NOT NULL,
    status          text NOT NULL DEFAULT 'decided' CHECK (status IN ('decided', 'malformed', 'rejected')),
    sender_raw      text,
    sender_kind     text,            -- phone | email | web | withheld | none
    sender          text,            -- normalised handle
    recipient       text,
    provider_id     text,
    subject         text,
    body_excerpt    text,
    customer_ids    bigint[] NOT NULL DEFAULT '{}',
    case_id         bigint,
    representative_of bigint[] NOT NULL DEFAULT '{}',
    ambiguous       boolean NOT NULL DEFAULT false,
    action          text NOT NULL CHECK (action IN ('route', 'deflect', 'auto_acknowledge', 'hold')),
    target          jsonb,
    flagged         boolean NOT NULL DEFAULT false,
    banner          jsonb,
    customer_message text,
    reasons         jsonb NOT NULL DEFAULT '[]',
    ruleset_version integer,
    degraded        boolean NOT NULL DEFAULT false,
    latency_us      integer,
    ack_sent        boolean NOT NULL DEFAULT false,
    ack_note        text,
    error           text,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
CREATE TABLE contacts_default PARTITION OF contacts DEFAULT;
CREATE INDEX contacts_customers ON contacts USING gin (customer_ids);
CREATE INDEX contacts_received ON contacts (received_at);
CREATE INDEX contacts_case ON contacts (case_id) WHERE case_id IS NOT NULL;

-- The idempotency backstop: one (channel, provider id) → one contact, across every process.
CREATE TABLE contact_provider_ids (
    channel     text NOT NULL,
    provider_id text NOT NULL,
    contact_id  uuid NOT NULL,
    decision    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, provider_id)
);

-- Creates monthly partitions of contacts from `from_month` for `months` months; idempotent.
CREATE FUNCTION ensure_contact_partitions(from_month date, months integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    start date := date_trunc('month', from_month)::date;
    made integer := 0;
    part text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        part := format('contacts_%s', to_char(start + make_interval(months => i), 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF contacts FOR VALUES FROM (%L) TO (%L)',
                           part, start + make_interval(months => i), start + make_interval(months => i + 1));
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END $$;

SELECT ensure_contact_partitions((now() - interval '1 month')::date, 15);
