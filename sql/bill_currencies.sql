-- bill_currencies: the currency AWS bills in (`line_item_currency_code`: USD; CNY for AWS
-- China, INR for AWS India) per period, payer and billing group. A payer's rows share one
-- currency, and so do a group's: `price::currency` checks both from these few rows, over every
-- selected period before anything is written.
--
-- Inputs: `assigned` (`sql/assign.sql`) over the selected periods. Rows without a payer or a
-- currency are left to the period's own check, which names the column.
SELECT
    billing_period,
    bill_payer_account_id AS payer_account_id,
    billing_group,
    line_item_currency_code AS currency,
    COUNT(*) AS row_count
FROM assigned
WHERE bill_payer_account_id IS NOT NULL AND line_item_currency_code IS NOT NULL
GROUP BY 1, 2, 3, 4
