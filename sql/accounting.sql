-- accounting: where every row of the period went, with billable and pro forma amounts.
-- Small (groups x types x services x treatments); feeds the control totals, the margin report,
-- custom line item bases, invoice lines, the run manifest, and the unknown-type and unassigned
-- checks.
SELECT
    billing_group,
    line_item_line_item_type AS line_item_type,
    line_item_product_code AS product_code,
    charge_class,
    treatment,
    CASE WHEN billing_group = '_unassigned' THEN line_item_usage_account_id END AS unassigned_account,
    -- What makes a row unbillable whatever the plan: a key column without a value. The run
    -- refuses the period.
    CASE
        WHEN identity_line_item_id IS NULL THEN 'identity_line_item_id'
        WHEN line_item_usage_account_id IS NULL THEN 'line_item_usage_account_id'
        WHEN bill_payer_account_id IS NULL THEN 'bill_payer_account_id'
        WHEN line_item_unblended_cost IS NULL THEN 'line_item_unblended_cost'
        WHEN line_item_currency_code IS NULL THEN 'line_item_currency_code'
    END AS missing_column,
    -- The bill currency (one per payer and group: `sql/bill_currencies.sql` is checked first);
    -- every amount of the row is in it.
    line_item_currency_code AS currency,
    COUNT(*) AS row_count,
    SUM(line_item_unblended_cost) AS billable_cost,
    SUM(proforma_cost) AS proforma_cost,
    -- The product's name as AWS gives it (Marketplace products have opaque codes): for invoices.
    MAX(map_value(product, 'product_name')) AS product_name
FROM rated
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
