-- Contacts name a case however the customer typed it ("cmp-1234"): look references up case-blind.
CREATE INDEX cases_reference_upper ON cases (upper(reference));
