-- Looking a customer's contacts up uses `customer_ids @> ARRAY[id]`, which this GIN index serves.
-- fastupdate off: each insert updates the index itself, instead of an occasional insert paying to
-- merge a pending list (which showed as latency spikes on the decide path).
DROP INDEX contacts_customers;
CREATE INDEX contacts_customers ON contacts USING gin (customer_ids) WITH (fastupdate = off);
