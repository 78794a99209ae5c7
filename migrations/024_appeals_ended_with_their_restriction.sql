-- An appeal still open when its restriction is lifted (at review, say) or lapses has nothing left to
-- decide: it is closed as 'ended' on that day, by no one (no appeal decider made it), so that no
-- appeal is left open against a restriction no longer in force. Those left open before this change
-- are closed the same way.
ALTER TABLE appeals DROP CONSTRAINT appeals_outcome_check;
ALTER TABLE appeals ADD CONSTRAINT appeals_outcome_check CHECK (outcome IN ('upheld', 'varied', 'lifted', 'ended'));
UPDATE appeals a
   SET outcome = 'ended',
       decided_on = greatest(a.lodged_on, coalesce(r.valid_to, r.updated_at::date)),
       notes = 'The restriction was ' || r.status || ' before the appeal was decided.'
  FROM restrictions r
 WHERE r.id = a.restriction_id AND a.outcome IS NULL AND r.status IN ('lifted', 'lapsed');
