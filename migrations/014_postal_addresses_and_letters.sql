-- A customer's postal address as a window envelope shows it: up to six lines and a UK postcode on
-- its own line. The free-text column of 011 is read into these where its last line ends with a
-- postcode; an address that does not keeps its lines and no postcode until someone corrects it.
ALTER TABLE customers
    ADD COLUMN address_lines text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(address_lines) <= 6),
    ADD COLUMN postcode text
        CHECK (postcode ~ '^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$');

WITH parsed AS (
    SELECT id, lines,
           upper(substring(lines[cardinality(lines)]
                 FROM '(?i)([A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2})\s*$')) AS code
    FROM (SELECT id, array_remove(ARRAY(SELECT btrim(l) FROM regexp_split_to_table(postal_address, E'[\\n;]') l
                                         WHERE btrim(l) <> ''), NULL) AS lines
          FROM customers WHERE btrim(postal_address) <> '') s
)
UPDATE customers c SET
    address_lines = CASE WHEN p.code IS NULL THEN p.lines[1:6] ELSE ARRAY(
        SELECT x FROM unnest(p.lines[1:cardinality(p.lines) - 1]
                             || btrim(regexp_replace(p.lines[cardinality(p.lines)],
                                   '(?i)[\s,]*[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}\s*$', ''), ' ,')) x
        WHERE x <> '' LIMIT 6) END,
    postcode = CASE WHEN p.code IS NULL THEN NULL
                    ELSE regexp_replace(replace(p.code, ' ', ''), '([0-9][A-Z]{2})$', ' \1') END
FROM parsed p WHERE c.id = p.id;

ALTER TABLE customers DROP COLUMN postal_address;

-- How a letter went and to whom: an email's recipient and its outbox message (whose status says
-- whether it was delivered); and the PDF as sent.
ALTER TABLE restriction_letters
    ADD COLUMN sent_to   text,
    ADD COLUMN outbox_id bigint REFERENCES outbox ON DELETE SET NULL,
    ADD COLUMN body_pdf  bytea;
