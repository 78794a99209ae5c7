-- Reception and the post room name a visitor or a letter's writer by housing-system reference,
-- typed in any case: the contact log looks references up case-blind.
CREATE INDEX customers_external_ref_lower ON customers (lower(external_ref));
