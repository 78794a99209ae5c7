-- The decide path's extras: the case reference as the caller gave it (resolved to case_id at write
-- time for customers outside the restriction index) and who a representative said they act for.
ALTER TABLE contacts ADD COLUMN case_ref text;
ALTER TABLE contacts ADD COLUMN on_behalf_of text;
CREATE INDEX contacts_sender ON contacts (sender, received_at) WHERE sender IS NOT NULL;
