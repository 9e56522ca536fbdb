-- account_groups: the billing group of every (usage account, payer) pair of the period. An
-- account listed by a group beats the group of its organization (payer); a pair in neither is
-- `_unassigned`. A few hundred pairs against millions of rows: the assignment is decided here
-- once per pair and joined back to the rows by `sql/assign.sql` and `sql/rate.sql`.
--
-- Inputs: `cur` and the config tables `group_accounts`, `group_orgs`.
WITH pairs AS (
    SELECT DISTINCT line_item_usage_account_id, bill_payer_account_id FROM cur
)
SELECT
    p.line_item_usage_account_id,
    p.bill_payer_account_id,
    COALESCE(ga.billing_group, go.billing_group, '_unassigned') AS billing_group,
    CASE WHEN ga.billing_group IS NOT NULL THEN 'account'
         WHEN go.billing_group IS NOT NULL THEN 'organization'
    END AS assigned_by
FROM pairs p
LEFT JOIN group_accounts ga ON ga.account_id = p.line_item_usage_account_id
LEFT JOIN group_orgs go ON go.payer_account_id = p.bill_payer_account_id
