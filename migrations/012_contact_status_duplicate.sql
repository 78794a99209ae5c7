-- A contact answered from the spool while the database was away, whose provider id turned out to be
-- answered already by another contact (a retry the gateway could not recognise then), is kept with
-- status 'duplicate' rather than dropped: its caller was given its contact id.
ALTER TABLE contacts DROP CONSTRAINT IF EXISTS contacts_status_check;
ALTER TABLE contacts ADD CONSTRAINT contacts_status_check
    CHECK (status IN ('decided', 'malformed', 'rejected', 'duplicate'));
