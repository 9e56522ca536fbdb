-- account_payers: the payer of every usage account of the period (`account_groups`), for the
-- custom line items of account-list groups: their rows carry their account's payer, so every
-- pro forma row is valid CUR input one billing level down. An account billed by two payers in
-- one period takes the first by id.
SELECT line_item_usage_account_id AS account_id, MIN(bill_payer_account_id) AS payer_account_id
FROM account_groups
WHERE line_item_usage_account_id IS NOT NULL AND bill_payer_account_id IS NOT NULL
GROUP BY line_item_usage_account_id
