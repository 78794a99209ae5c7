-- The restriction index refreshes one customer by customer id; without these it read every identifier.
CREATE INDEX identifiers_customer ON identifiers (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX identifiers_representative ON identifiers (representative_id) WHERE representative_id IS NOT NULL;
