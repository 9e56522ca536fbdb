-- bill_currencies: the currency AWS bills in (`line_item_currency_code`: USD; CNY for AWS
-- China, INR for AWS India) per billing period start, payer and billing group. A payer's rows
-- share one currency, and so do a group's: `price::currency` checks both from these few rows,
-- over every selected period before anything is written.
--
-- Inputs: `cur` (with `match_group`, `price::matches`) and `account_groups`
-- (`sql/account_groups.sql`). The rows are counted per (period, account, payer, currency, match
-- group) first, and only those few are assigned, as `sql/assign.sql` does: by their match, else
-- by (usage account, payer). Rows without a payer or a currency are left
-- to the period's own check, which names the column.
WITH bills AS (
    SELECT
        bill_billing_period_start_date,
        line_item_usage_account_id,
        bill_payer_account_id,
        line_item_currency_code,
        match_group,
        COUNT(*) AS row_count
    FROM cur
    WHERE bill_payer_account_id IS NOT NULL AND line_item_currency_code IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5
)
SELECT
    b.bill_billing_period_start_date AS period_start,
    b.bill_payer_account_id AS payer_account_id,
    COALESCE(b.match_group, g.billing_group) AS billing_group,
    b.line_item_currency_code AS currency,
    SUM(b.row_count) AS row_count
FROM account_groups g
JOIN bills b
    ON (b.line_item_usage_account_id IS NOT DISTINCT FROM g.line_item_usage_account_id)
   AND (b.bill_payer_account_id IS NOT DISTINCT FROM g.bill_payer_account_id)
GROUP BY 1, 2, 3, 4
