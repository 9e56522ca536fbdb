-- assign: every CUR row of the period (`cur`) with its billing group: the billable table. A row
-- a group's match claims (`match_group`, `price::matches`) is that group's; else its (usage
-- account, payer)'s.
--
-- Inputs: `cur` and `account_groups` (`sql/account_groups.sql`). Every key compares with IS NOT
-- DISTINCT FROM (a null account is a key too), which the engine hashes as one equi-join; the
-- small side comes first, as it is the one held in memory. (Parentheses: the SQL parser binds
-- IS NOT DISTINCT FROM looser than AND.)
SELECT c.* EXCLUDE (match_group), COALESCE(c.match_group, g.billing_group) AS billing_group
FROM account_groups g
JOIN cur c
    ON (c.line_item_usage_account_id IS NOT DISTINCT FROM g.line_item_usage_account_id)
   AND (c.bill_payer_account_id IS NOT DISTINCT FROM g.bill_payer_account_id)
