-- duplicates: a line item is one row per usage interval (identity_line_item_id repeats across
-- hours or days, never within one). A second copy means a re-delivered export would be billed
-- twice. The first duplicate found is enough to refuse the period.
SELECT
    identity_line_item_id,
    CAST(line_item_usage_start_date AS VARCHAR) AS usage_start,
    CAST(line_item_usage_end_date AS VARCHAR) AS usage_end,
    COUNT(*) AS copies
FROM cur
GROUP BY identity_line_item_id, line_item_usage_start_date, line_item_usage_end_date
HAVING COUNT(*) > 1
LIMIT 1
