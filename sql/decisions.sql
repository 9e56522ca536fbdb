-- decisions: how every row of the period is treated and priced, decided once per distinct
-- combination of the columns a decision depends on (a few thousand, against millions of rows):
-- the row's group (`account_groups`, or a group's match), its charge class, the group's policy
-- and so its treatment, and the rule chain of its group's plan. `price::rated` keeps the result
-- in memory for the period, so that every pass over the rows (the accounting, the tables) joins
-- it to them instead of deciding again; `sql/rate.sql` does the join.
--
-- Inputs: `cur` (with `match_group`, `price::matches`), `account_groups`
-- (`sql/account_groups.sql`), `line_item_types` (`sql/line_item_types.csv`: what each line item
-- type is) and the config tables: groups (plan policies per group), credit_exceptions,
-- rule_values and rule_chains (the period's, `price::rules`). Treatments: rerate (priced by its
-- rules), pass (billable value), drop (billable only), unassigned (in no group), unknown (a line
-- item type this engine does not know: an error).
WITH
-- The group of a commitment's owner, from the owner account itself, never from the row that
-- uses the commitment: the group of the owner's own rows (its explicit account group, else its
-- payer's). An owner that is no usage account of the input (the bill-transfer account), that
-- is in no group, or whose rows two groups share owns its commitments outside every group.
owner_groups AS (
    SELECT line_item_usage_account_id AS account_id, MIN(billing_group) AS billing_group
    FROM account_groups
    WHERE billing_group <> '_unassigned' AND line_item_usage_account_id IS NOT NULL
    GROUP BY line_item_usage_account_id
    HAVING COUNT(DISTINCT billing_group) = 1
),
decision_keys AS (
    SELECT DISTINCT
        line_item_usage_account_id, bill_payer_account_id, line_item_line_item_type,
        line_item_product_code, line_item_usage_type, line_item_operation, bill_billing_entity,
        savings_plan_savings_plan_a_r_n, reservation_reservation_a_r_n, match_group,
        -- A credit's description decides its credit exception (SPEC §5.3); other lines' does not.
        CASE WHEN line_item_line_item_type = 'Credit' THEN line_item_line_item_description END
            AS credit_description
    FROM cur
),
classified AS (
    SELECT
        k.*,
        -- A group's match (tag, cost category) wins over the account's and payer's group.
        COALESCE(k.match_group, g.billing_group) AS billing_group,
        CASE WHEN k.match_group IS NOT NULL THEN 'match' ELSE g.assigned_by END AS assigned_by,
        lt.unowned,
        lt.shown_as,
        -- The owner of a commitment is the account inside its ARN (arn:aws:svc:region:ACCOUNT:...).
        CASE lt.commitment
            WHEN 'savings-plan' THEN NULLIF(split_part(k.savings_plan_savings_plan_a_r_n, ':', 5), '')
            WHEN 'reservation' THEN NULLIF(split_part(k.reservation_reservation_a_r_n, ':', 5), '')
        END AS commitment_owner,
        -- Null for a type the table does not know.
        CASE
            WHEN lt.charge_class IN ('usage', 'fee')
                 AND (k.line_item_product_code LIKE 'AWSSupport%'
                      OR k.line_item_product_code IN ('AWSDeveloperSupport', 'OCBPremiumSupport'))
                THEN 'support'
            ELSE lt.charge_class
        END AS charge_class
    FROM decision_keys k
    JOIN account_groups g
        ON (k.line_item_usage_account_id IS NOT DISTINCT FROM g.line_item_usage_account_id)
       AND (k.bill_payer_account_id IS NOT DISTINCT FROM g.bill_payer_account_id)
    LEFT JOIN line_item_types lt ON lt.line_item_type = k.line_item_line_item_type
),
-- Each credit's first matching exception of its plan (descriptions as globs, in order).
credit_policies AS (
    SELECT
        g.pricing_plan, k.credit_description, k.line_item_product_code,
        first_value(e.policy ORDER BY e.position) AS policy,
        first_value(e.description ORDER BY e.position) AS credit_exception
    FROM (SELECT DISTINCT billing_group, credit_description, line_item_product_code
          FROM classified WHERE credit_description IS NOT NULL) k
    JOIN groups g ON g.billing_group = k.billing_group
    JOIN credit_exceptions e
        ON e.pricing_plan = g.pricing_plan
       AND k.credit_description LIKE e.pattern
       AND (e.service IS NULL OR e.service = k.line_item_product_code)
    GROUP BY 1, 2, 3
),
treated AS (
    SELECT
        a.*,
        g.pricing_plan,
        og.billing_group AS commitment_owner_group,
        cp.credit_exception,
        CASE
            -- An unknown type stops the period wherever it is, in no group too.
            WHEN a.charge_class IS NULL THEN 'unknown'
            WHEN a.billing_group = '_unassigned' THEN 'unassigned'
            WHEN a.charge_class IN ('usage', 'fee') THEN 'rerate'
            WHEN a.charge_class = 'bundled-discount' THEN 'pass'
            WHEN a.charge_class = 'support' THEN g.support
            WHEN a.charge_class = 'credits' THEN COALESCE(cp.policy, g.credits)
            WHEN a.charge_class = 'refunds' THEN g.refunds
            WHEN a.charge_class = 'aws-tax' THEN g.aws_tax
            WHEN a.charge_class = 'private-discounts' THEN g.private_discounts
            -- commitments: `pass` passes all; `group` passes those owned inside the group;
            -- the rest is re-rated from on-demand (covered usage) or dropped (fees, negations),
            -- as the type's `unowned` says.
            WHEN a.charge_class = 'commitments' AND g.commitments = 'pass' THEN 'pass'
            WHEN a.charge_class = 'commitments' AND g.commitments = 'group'
                 AND og.billing_group = a.billing_group
                THEN 'pass'
            WHEN a.charge_class = 'commitments' THEN a.unowned
            ELSE 'unknown'
        END AS treatment
    FROM classified a
    LEFT JOIN groups g ON g.billing_group = a.billing_group
    LEFT JOIN owner_groups og ON og.account_id = a.commitment_owner
    LEFT JOIN credit_policies cp
        ON cp.pricing_plan = g.pricing_plan
       AND cp.credit_description = a.credit_description
       AND (cp.line_item_product_code IS NOT DISTINCT FROM a.line_item_product_code)
),
ruled AS (
    -- The rules of the group's plan (in force in the period) resolved once per combination of
    -- the values they name (`price::rules`): each key's service, usage type and operation of
    -- that service, and billing entity are looked up among the values the plan's rules name
    -- (null: a value none names), and the chain of that combination joined in one equi-join.
    SELECT
        t.*,
        ch.matched_rule,
        ch.rules_beaten,
        COALESCE(ch.factor, CAST(1 AS DECIMAL(22, 12))) AS factor,
        ch.fixed_rate,
        -- Usage covered by a commitment the group does not own, charged at on-demand: it
        -- shows as the on-demand usage it is charged as.
        t.treatment = 'rerate' AND t.shown_as IS NOT NULL AS rerated_commitment
    FROM treated t
    LEFT JOIN rule_values vs
        ON vs.pricing_plan = t.pricing_plan AND vs.field = 'service'
       AND vs.value = t.line_item_product_code
    LEFT JOIN rule_values vu
        ON vu.pricing_plan = t.pricing_plan AND vu.field = 'usage_type'
       AND vu.service = t.line_item_product_code AND vu.value = t.line_item_usage_type
    LEFT JOIN rule_values vo
        ON vo.pricing_plan = t.pricing_plan AND vo.field = 'operation'
       AND vo.service = t.line_item_product_code AND vo.value = t.line_item_operation
    LEFT JOIN rule_values ve
        ON ve.pricing_plan = t.pricing_plan AND ve.field = 'billing_entity'
       AND ve.value = t.bill_billing_entity
    LEFT JOIN rule_chains ch
        ON ch.pricing_plan = t.pricing_plan
       AND (ch.service IS NOT DISTINCT FROM vs.value)
       AND (ch.usage_type IS NOT DISTINCT FROM vu.value)
       AND (ch.operation IS NOT DISTINCT FROM vo.value)
       AND (ch.billing_entity IS NOT DISTINCT FROM ve.value)
),
-- How AWS words the on-demand line of a usage type: what a line re-rated from a commitment
-- shows instead of its own description ("… reserved instance applied"), so that nothing in pro
-- forma tells a commitment covered it. Looked up only for the few keys re-rated from one.
rerated_commitment_keys AS (
    SELECT DISTINCT line_item_product_code, line_item_usage_type, line_item_operation
    FROM ruled
    WHERE rerated_commitment
),
on_demand_descriptions AS (
    SELECT c.line_item_product_code, c.line_item_usage_type, c.line_item_operation,
           MIN(c.line_item_line_item_description) AS description
    FROM rerated_commitment_keys k
    JOIN cur c
        ON c.line_item_product_code = k.line_item_product_code
       AND c.line_item_usage_type = k.line_item_usage_type
       AND c.line_item_operation = k.line_item_operation
    WHERE c.pricing_term = 'OnDemand'
    GROUP BY 1, 2, 3
),
shown AS (
    SELECT
        d.*,
        od.description AS on_demand_description
    FROM ruled d
    LEFT JOIN on_demand_descriptions od
        ON od.line_item_product_code = d.line_item_product_code
       AND od.line_item_usage_type = d.line_item_usage_type
       AND od.line_item_operation = d.line_item_operation
)
SELECT * FROM shown
