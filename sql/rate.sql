-- rate: every CUR row of the period with its decision (`decisions`, `sql/decisions.sql`: its
-- group, classification, treatment and rule chain, made once per distinct combination of the
-- columns it depends on) and priced by it: the most specific rule, or the plan's rules in order.
--
-- Inputs: `cur` (with `match_group`, `price::matches`) and `decisions`.
WITH
-- The small side (the decisions) first: it is the one held in memory. Every key compares with IS
-- NOT DISTINCT FROM (nulls are keys too), which the engine hashes as one equi-join; a plain `=`
-- among them would turn the others into a filter over every pair. (Parentheses: the SQL parser
-- binds IS NOT DISTINCT FROM looser than AND.)
priced AS (
    SELECT
        c.* EXCLUDE (match_group),
        d.billing_group,
        d.assigned_by,
        d.commitment_owner,
        d.charge_class,
        d.pricing_plan,
        d.commitment_owner_group,
        d.treatment,
        d.credit_exception,
        d.matched_rule,
        d.rules_beaten,
        d.factor,
        d.fixed_rate,
        -- Public on-demand is the base; where AWS gives none (Marketplace, some fees) and for
        -- fees themselves, the unblended amount is.
        CASE WHEN d.charge_class = 'fee' OR COALESCE(c.pricing_public_on_demand_cost, 0) = 0
             THEN c.line_item_unblended_cost ELSE c.pricing_public_on_demand_cost
        END AS base_cost,
        CASE WHEN d.charge_class = 'fee' OR COALESCE(c.pricing_public_on_demand_cost, 0) = 0
             THEN c.line_item_unblended_rate ELSE c.pricing_public_on_demand_rate
        END AS base_rate,
        CASE WHEN d.treatment = 'rerate' THEN d.matched_rule END AS pricing_rule,
        CASE WHEN d.rerated_commitment THEN d.shown_as ELSE c.line_item_line_item_type END
            AS proforma_line_item_type,
        CASE WHEN d.rerated_commitment
             THEN COALESCE(d.on_demand_description, 'On Demand ' || c.line_item_usage_type)
             ELSE c.line_item_line_item_description
        END AS proforma_line_item_description,
        d.rerated_commitment
    FROM decisions d
    JOIN cur c
        ON (c.line_item_usage_account_id IS NOT DISTINCT FROM d.line_item_usage_account_id)
       AND (c.bill_payer_account_id IS NOT DISTINCT FROM d.bill_payer_account_id)
       AND (c.line_item_line_item_type IS NOT DISTINCT FROM d.line_item_line_item_type)
       AND (c.line_item_product_code IS NOT DISTINCT FROM d.line_item_product_code)
       AND (c.line_item_usage_type IS NOT DISTINCT FROM d.line_item_usage_type)
       AND (c.line_item_operation IS NOT DISTINCT FROM d.line_item_operation)
       AND (c.bill_billing_entity IS NOT DISTINCT FROM d.bill_billing_entity)
       AND (c.savings_plan_savings_plan_a_r_n IS NOT DISTINCT FROM d.savings_plan_savings_plan_a_r_n)
       AND (c.reservation_reservation_a_r_n IS NOT DISTINCT FROM d.reservation_reservation_a_r_n)
       AND (c.match_group IS NOT DISTINCT FROM d.match_group)
       AND ((CASE WHEN c.line_item_line_item_type = 'Credit' THEN c.line_item_line_item_description END)
            IS NOT DISTINCT FROM d.credit_description)
)
-- Rounded once, to the storage scale: a unit price times the usage amount (read as money is),
-- or the base times the chain's factor.
SELECT
    p.*,
    CASE
        WHEN p.treatment = 'rerate' AND p.fixed_rate IS NOT NULL
            THEN CAST(CAST(p.line_item_usage_amount AS DECIMAL(38, 10)) * p.fixed_rate AS DECIMAL(38, 10))
        WHEN p.treatment = 'rerate' THEN CAST(p.base_cost * p.factor AS DECIMAL(38, 10))
        WHEN p.treatment = 'pass' THEN p.line_item_unblended_cost
    END AS proforma_cost,
    CASE
        WHEN p.treatment = 'rerate' AND p.fixed_rate IS NOT NULL
            THEN CAST(p.fixed_rate AS DECIMAL(38, 10))
        WHEN p.treatment = 'rerate' THEN CAST(p.base_rate * p.factor AS DECIMAL(38, 10))
        WHEN p.treatment = 'pass' THEN p.line_item_unblended_rate
    END AS proforma_rate
FROM priced p
