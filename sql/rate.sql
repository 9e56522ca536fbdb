-- rate: assigns every CUR row to a billing group, decides how the group's pricing plan treats
-- it (charge class -> policy -> treatment) and prices it with the one most specific rule.
--
-- Inputs: `cur` (normalized CUR 2.0 rows of one period) and the config tables registered from
-- the validated config: group_accounts, group_orgs, groups (plan policies per group), rules.
-- Treatments: rerate (priced by a rule), pass (billable value), drop (billable only),
-- unassigned (in no group), unknown (a line item type this engine does not know: an error).
WITH assigned AS (
    SELECT
        c.*,
        COALESCE(ga.billing_group, go.billing_group, '_unassigned') AS billing_group,
        CASE WHEN ga.billing_group IS NOT NULL THEN 'account'
             WHEN go.billing_group IS NOT NULL THEN 'organization'
        END AS assigned_by,
        go.billing_group AS organization_group,
        -- The owner of a commitment is the account inside its ARN (arn:aws:svc:region:ACCOUNT:...).
        CASE
            WHEN c.line_item_line_item_type IN ('SavingsPlanCoveredUsage', 'SavingsPlanNegation',
                                                'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee')
                THEN NULLIF(split_part(c.savings_plan_savings_plan_a_r_n, ':', 5), '')
            WHEN c.line_item_line_item_type IN ('DiscountedUsage', 'RIFee')
                THEN NULLIF(split_part(c.reservation_reservation_a_r_n, ':', 5), '')
        END AS commitment_owner,
        CASE
            WHEN c.line_item_line_item_type IN ('Usage', 'Fee')
                 AND (c.line_item_product_code LIKE 'AWSSupport%'
                      OR c.line_item_product_code IN ('AWSDeveloperSupport', 'OCBPremiumSupport'))
                THEN 'support'
            WHEN c.line_item_line_item_type = 'Usage' THEN 'usage'
            WHEN c.line_item_line_item_type = 'Fee' THEN 'fee'
            WHEN c.line_item_line_item_type IN ('DiscountedUsage', 'SavingsPlanCoveredUsage',
                                                'SavingsPlanNegation', 'SavingsPlanRecurringFee',
                                                'SavingsPlanUpfrontFee', 'RIFee')
                THEN 'commitments'
            WHEN c.line_item_line_item_type = 'Credit' THEN 'credits'
            WHEN c.line_item_line_item_type = 'Refund' THEN 'refunds'
            WHEN c.line_item_line_item_type = 'Tax' THEN 'aws-tax'
            WHEN c.line_item_line_item_type IN ('EdpDiscount', 'PrivateRateDiscount', 'RiVolumeDiscount',
                                                'SppDiscount', 'DistributorDiscount', 'Discount')
                THEN 'private-discounts'
            WHEN c.line_item_line_item_type = 'BundledDiscount' THEN 'bundled-discount'
            ELSE 'unknown'
        END AS charge_class
    FROM cur c
    LEFT JOIN group_accounts ga ON ga.account_id = c.line_item_usage_account_id
    LEFT JOIN group_orgs go ON go.payer_account_id = c.bill_payer_account_id
),
treated AS (
    SELECT
        a.*,
        g.pricing_plan,
        -- A commitment is shared inside its payer's organization, so an owner that no group
        -- lists explicitly belongs to the organization's group.
        CASE WHEN a.commitment_owner IS NOT NULL
             THEN COALESCE(oa.billing_group, a.organization_group)
        END AS commitment_owner_group,
        CASE
            WHEN a.billing_group = '_unassigned' THEN 'unassigned'
            WHEN a.charge_class = 'unknown' THEN 'unknown'
            WHEN a.charge_class IN ('usage', 'fee') THEN 'rerate'
            WHEN a.charge_class = 'bundled-discount' THEN 'pass'
            WHEN a.charge_class = 'support' THEN g.support
            WHEN a.charge_class = 'credits' THEN g.credits
            WHEN a.charge_class = 'refunds' THEN g.refunds
            WHEN a.charge_class = 'aws-tax' THEN g.aws_tax
            WHEN a.charge_class = 'private-discounts' THEN g.private_discounts
            -- commitments: `pass` passes all; `group` passes those owned inside the group;
            -- the rest is re-rated from on-demand (covered usage) or dropped (fees, negations).
            WHEN a.charge_class = 'commitments' AND g.commitments = 'pass' THEN 'pass'
            WHEN a.charge_class = 'commitments' AND g.commitments = 'group'
                 AND COALESCE(oa.billing_group, a.organization_group) = a.billing_group
                 AND a.commitment_owner IS NOT NULL
                THEN 'pass'
            WHEN a.charge_class = 'commitments'
                 AND a.line_item_line_item_type IN ('DiscountedUsage', 'SavingsPlanCoveredUsage')
                THEN 'rerate'
            WHEN a.charge_class = 'commitments' THEN 'drop'
            ELSE 'unknown'
        END AS treatment
    FROM assigned a
    LEFT JOIN groups g ON g.billing_group = a.billing_group
    LEFT JOIN group_accounts oa ON oa.account_id = a.commitment_owner
),
ruled AS (
    -- One equi-join per rule kind, most specific first; rules never stack.
    SELECT
        t.*,
        r6.rule_name AS rule_sku_usage_type_operation,
        r5.rule_name AS rule_sku_usage_type,
        r4.rule_name AS rule_sku_operation,
        r3.rule_name AS rule_service,
        r2.rule_name AS rule_billing_entity,
        r1.rule_name AS rule_global,
        COALESCE(r6.rule_name, r5.rule_name, r4.rule_name, r3.rule_name, r2.rule_name, r1.rule_name) AS matched_rule,
        COALESCE(r6.factor, r5.factor, r4.factor, r3.factor, r2.factor, r1.factor, CAST(1 AS DECIMAL(16, 8))) AS factor,
        -- Public on-demand is the base; where AWS gives none (Marketplace, some fees) and for
        -- fees themselves, the unblended amount is.
        CASE WHEN t.charge_class = 'fee' OR COALESCE(t.pricing_public_on_demand_cost, 0) = 0
             THEN t.line_item_unblended_cost ELSE t.pricing_public_on_demand_cost
        END AS base_cost,
        CASE WHEN t.charge_class = 'fee' OR COALESCE(t.pricing_public_on_demand_cost, 0) = 0
             THEN t.line_item_unblended_rate ELSE t.pricing_public_on_demand_rate
        END AS base_rate
    FROM treated t
    LEFT JOIN (SELECT * FROM rules WHERE kind = 'sku-usage-type-operation') r6
        ON r6.pricing_plan = t.pricing_plan AND r6.service = t.line_item_product_code
       AND r6.usage_type = t.line_item_usage_type AND r6.operation = t.line_item_operation
    LEFT JOIN (SELECT * FROM rules WHERE kind = 'sku-usage-type') r5
        ON r5.pricing_plan = t.pricing_plan AND r5.service = t.line_item_product_code
       AND r5.usage_type = t.line_item_usage_type
    LEFT JOIN (SELECT * FROM rules WHERE kind = 'sku-operation') r4
        ON r4.pricing_plan = t.pricing_plan AND r4.service = t.line_item_product_code
       AND r4.operation = t.line_item_operation
    LEFT JOIN (SELECT * FROM rules WHERE kind = 'service') r3
        ON r3.pricing_plan = t.pricing_plan AND r3.service = t.line_item_product_code
    LEFT JOIN (SELECT * FROM rules WHERE kind = 'billing-entity') r2
        ON r2.pricing_plan = t.pricing_plan AND r2.billing_entity = t.bill_billing_entity
    LEFT JOIN (SELECT * FROM rules WHERE kind = 'global') r1
        ON r1.pricing_plan = t.pricing_plan
)
SELECT
    r.*,
    CASE WHEN r.treatment = 'rerate' THEN r.matched_rule END AS pricing_rule,
    CASE r.treatment
        WHEN 'rerate' THEN CAST(r.base_cost * r.factor AS DECIMAL(38, 10))
        WHEN 'pass' THEN r.line_item_unblended_cost
    END AS proforma_cost,
    CASE r.treatment
        WHEN 'rerate' THEN CAST(r.base_rate * r.factor AS DECIMAL(38, 10))
        WHEN 'pass' THEN r.line_item_unblended_rate
    END AS proforma_rate
FROM ruled r
