-- An appeal still open when its restriction is lifted (by a caution lead, say) or lapses has nothing
-- left to decide: it is closed as 'ended' on that day, by no one (no appeal decider made it), so that
-- no appeal is left open against a restriction no longer in force. Those left open before this
-- change are closed the same way: on the day of the lift (its event's), or the day after the last
-- day of a lapsed one, never before the appeal was lodged nor after today; each with an event.
ALTER TABLE appeals DROP CONSTRAINT appeals_outcome_check;
ALTER TABLE appeals ADD CONSTRAINT appeals_outcome_check CHECK (outcome IN ('upheld', 'varied', 'lifted', 'ended'));
WITH ended AS (
    UPDATE appeals a
       SET outcome = 'ended',
           decided_on = least(current_date, greatest(a.lodged_on, CASE
               WHEN r.status = 'lapsed' THEN r.valid_to + 1
               ELSE coalesce((SELECT max(e.at)::date FROM restriction_events e
                               WHERE e.restriction_id = r.id AND e.kind = 'lifted'), r.valid_to, r.updated_at::date)
           END)),
           notes = 'The restriction was ' || r.status || ' before the appeal was decided.'
      FROM restrictions r
     WHERE r.id = a.restriction_id AND a.outcome IS NULL AND r.status IN ('lifted', 'lapsed')
    RETURNING a.id, a.restriction_id, a.decided_on, a.notes, r.customer_id
)
INSERT INTO restriction_events (restriction_id, customer_id, actor, kind, why, after)
SELECT restriction_id, customer_id, 'system:upgrade', 'appeal_decided', notes,
       jsonb_build_object('appeal_id', id, 'outcome', 'ended', 'decided_on', decided_on)
  FROM ended;
