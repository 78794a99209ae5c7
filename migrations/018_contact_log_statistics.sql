-- The contact log grows all day, so autovacuum analyses its partition every time a tenth more rows
-- have arrived, on the same machine as the decide path. No query filters, joins or sorts on the
-- caller's raw text, the message told to the caller, the reasons, the acknowledgement's note, the
-- error, the latency or on whose behalf, and their statistics were a large part of every analysis:
-- they are no longer gathered (measured on the 10,000-customer bench database: the partition's analysis
-- 520 -> 300 ms, the provider ids' 550 -> 80 ms). A partition made later gets the same, column by column.
ALTER TABLE contacts
    ALTER COLUMN sender_raw SET STATISTICS 0,
    ALTER COLUMN customer_message SET STATISTICS 0,
    ALTER COLUMN reasons SET STATISTICS 0,
    ALTER COLUMN ack_note SET STATISTICS 0,
    ALTER COLUMN error SET STATISTICS 0,
    ALTER COLUMN latency_us SET STATISTICS 0,
    ALTER COLUMN on_behalf_of SET STATISTICS 0;
ALTER TABLE contact_provider_ids ALTER COLUMN decision SET STATISTICS 0;

CREATE OR REPLACE FUNCTION ensure_contact_partitions(from_month date, months integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    start date := date_trunc('month', from_month)::date;
    made integer := 0;
    part text;
    col name;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        part := format('contacts_%s', to_char(start + make_interval(months => i), 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF contacts FOR VALUES FROM (%L) TO (%L)',
                           part, start + make_interval(months => i), start + make_interval(months => i + 1));
            -- A new partition takes the default statistics target: the parent's zeros are copied.
            FOR col IN SELECT attname FROM pg_attribute
                       WHERE attrelid = 'contacts'::regclass AND attnum > 0 AND NOT attisdropped
                         AND attstattarget = 0 LOOP
                EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET STATISTICS 0', part, col);
            END LOOP;
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END $$;
