-- focus: the period's pro forma rows as FOCUS 1.2 (SPEC §6.4), one row per pro forma row, the
-- custom line items included. Money is exact: each amount in the bill currency (what pro forma
-- holds, `PricingCurrency…` columns) times the invoice's FX rate (`BilledCost` …), both
-- Decimal(38, 10), so Decimal(38, 20) holds the product without rounding and Σ BilledCost per
-- group is the invoice subtotal before its rounding.
--
-- Inputs: `focus_source` (the pro forma version the run committed, the period's rows),
-- `focus_invoices` (per group: the invoice in force, its currency and FX rate, the billing
-- account and issuer, the period's bounds: `focus::invoices`), `line_item_types`
-- (`sql/line_item_types.csv`: each type's ChargeCategory and ChargeFrequency) and `services`
-- (`sql/services.csv`: each service's ServiceCategory and ServiceSubcategory). Nothing billable
-- is read: pro forma has none.
--
-- Line item types map to ChargeCategory as the table says: usage and fees are Usage, a Savings
-- Plan's negation a Credit (its discount on the covered usage), commitment fees Purchase.
--
-- CUR writes an empty string where it has no value; FOCUS wants null (NullHandling), hence the
-- NULLIFs. Unit prices, quantities and SKUs are given for Usage and Purchase rows only (FOCUS
-- forbids them on Tax); commitment discount and capacity reservation columns are null.
-- The per-row facts depend on four columns only: decided once per distinct key (a few hundred),
-- then joined to the rows in one equi-join with the small side first (it is the side held in
-- memory), as `sql/rate.sql` does. (The unit's regular expressions, per row, were a tenth of
-- the stage.) Every key compares with IS NOT DISTINCT FROM, the group too (never null): with a
-- plain `=` on the group, the engine hashed the group alone and filtered every row against
-- each of its group's keys.
WITH keys AS (
    SELECT DISTINCT billing_group, line_item_line_item_type, line_item_product_code, pricing_unit
    FROM focus_source
),
facts AS (
    SELECT
        k.*,
        i.invoice_id,
        i.billing_account_id,
        i.billing_account_name,
        i.billing_currency,
        i.fx_rate,
        i.invoice_issuer,
        i.billing_period_start,
        i.billing_period_end,
        -- A custom line item (product code `CustomLineItem`, `price::custom::PRODUCT_CODE`) is
        -- the reseller's own charge: an Adjustment, or a Credit when it credits (below).
        k.line_item_product_code = 'CustomLineItem' AS custom,
        t.focus_charge_category,
        CASE
            WHEN k.line_item_product_code = 'CustomLineItem' THEN 'Recurring'
            ELSE t.focus_charge_frequency
        END AS charge_frequency,
        s.name AS known_service_name,
        s.service_category,
        s.service_subcategory,
        -- AWS's pricing units in FOCUS's UnitFormat (plural time units, no abbreviations).
        CASE NULLIF(k.pricing_unit, '')
            WHEN 'Hrs' THEN 'Hours'
            WHEN 'Lambda-GB-Second' THEN 'GB-Seconds'
            WHEN '64K-Chunks' THEN '64 KB Chunks'
            ELSE regexp_replace(
                regexp_replace(NULLIF(k.pricing_unit, ''), '-Mo$', '-Months'),
                '-(Hour|Day|Second|Minute)$', '-${1}s'
            )
        END AS unit
    FROM keys k
    JOIN focus_invoices i ON i.billing_group = k.billing_group
    LEFT JOIN line_item_types t ON t.line_item_type = k.line_item_line_item_type
    LEFT JOIN services s ON s.product_code = k.line_item_product_code
),
rows AS (
    SELECT
        p.*,
        f.invoice_id,
        f.billing_account_id,
        f.billing_account_name,
        f.billing_currency,
        f.fx_rate,
        f.invoice_issuer,
        f.billing_period_start,
        f.billing_period_end,
        f.custom,
        f.charge_frequency,
        f.service_category,
        f.service_subcategory,
        CASE
            WHEN f.custom AND p.line_item_unblended_cost < 0 THEN 'Credit'
            WHEN f.custom THEN 'Adjustment'
            ELSE f.focus_charge_category
        END AS charge_category,
        CAST(p.line_item_usage_amount AS DECIMAL(38, 10)) AS quantity,
        f.unit,
        COALESCE(
            NULLIF(map_value(p.product, 'product_name'), ''),
            f.known_service_name,
            p.line_item_product_code
        ) AS service_name,
        CAST(p.line_item_unblended_cost * f.fx_rate AS DECIMAL(38, 20)) AS billed_cost
    FROM facts f
    JOIN focus_source p
        ON (p.billing_group IS NOT DISTINCT FROM f.billing_group)
       AND (p.line_item_line_item_type IS NOT DISTINCT FROM f.line_item_line_item_type)
       AND (p.line_item_product_code IS NOT DISTINCT FROM f.line_item_product_code)
       AND (p.pricing_unit IS NOT DISTINCT FROM f.pricing_unit)
),
priced AS (
    SELECT
        *,
        charge_category IN ('Usage', 'Purchase') AS unit_priced,
        CASE
            WHEN charge_category IN ('Usage', 'Purchase') THEN
                COALESCE(
                    NULLIF(product_sku, ''),
                    line_item_product_code || ':' || COALESCE(NULLIF(line_item_usage_type, ''), 'Usage')
                )
        END AS sku_id
    FROM rows
)
SELECT
    NULLIF(line_item_availability_zone, '') AS "AvailabilityZone",
    billed_cost AS "BilledCost",
    billing_account_id AS "BillingAccountId",
    billing_account_name AS "BillingAccountName",
    'Billing Group' AS "BillingAccountType",
    billing_currency AS "BillingCurrency",
    billing_period_end AS "BillingPeriodEnd",
    billing_period_start AS "BillingPeriodStart",
    CAST(NULL AS VARCHAR) AS "CapacityReservationId",
    CAST(NULL AS VARCHAR) AS "CapacityReservationStatus",
    charge_category AS "ChargeCategory",
    CAST(NULL AS VARCHAR) AS "ChargeClass",
    NULLIF(line_item_line_item_description, '') AS "ChargeDescription",
    charge_frequency AS "ChargeFrequency",
    line_item_usage_end_date AS "ChargePeriodEnd",
    line_item_usage_start_date AS "ChargePeriodStart",
    CAST(NULL AS VARCHAR) AS "CommitmentDiscountCategory",
    CAST(NULL AS VARCHAR) AS "CommitmentDiscountId",
    CAST(NULL AS VARCHAR) AS "CommitmentDiscountName",
    CAST(NULL AS DECIMAL(38, 10)) AS "CommitmentDiscountQuantity",
    CAST(NULL AS VARCHAR) AS "CommitmentDiscountStatus",
    CAST(NULL AS VARCHAR) AS "CommitmentDiscountType",
    CAST(NULL AS VARCHAR) AS "CommitmentDiscountUnit",
    CASE WHEN charge_category = 'Usage' THEN quantity END AS "ConsumedQuantity",
    CASE WHEN charge_category = 'Usage' THEN COALESCE(unit, 'Units') END AS "ConsumedUnit",
    -- The re-rated price: what the customer is charged. Only a commitment's purchase (its fee,
    -- when the group owns the commitment and the plan passes it) is effectively 0 (FOCUS: a
    -- purchase covering future charges is amortized into them).
    billed_cost AS "ContractedCost",
    -- The re-rated rate in the invoice currency. (Pro forma's rate has 10 decimals: for
    -- per-request prices re-rated by a percentage, rate × quantity can miss the cost by up to
    -- 1e-4 of it, which FOCUS would want exact; a quotient of DataFusion decimals is not exact
    -- either, so the rate stays what pro forma says.)
    CASE
        WHEN unit_priced THEN CAST(line_item_unblended_rate * fx_rate AS DECIMAL(38, 20))
    END AS "ContractedUnitPrice",
    CASE WHEN charge_category = 'Purchase' THEN CAST(0 AS DECIMAL(38, 20)) ELSE billed_cost END
        AS "EffectiveCost",
    invoice_id AS "InvoiceId",
    invoice_issuer AS "InvoiceIssuerName",
    -- Public on-demand values; a row without them (a credit, a tax, a custom item) lists at
    -- what it bills.
    CASE
        WHEN unit_priced AND pricing_public_on_demand_cost IS NOT NULL
            THEN CAST(pricing_public_on_demand_cost * fx_rate AS DECIMAL(38, 20))
        ELSE billed_cost
    END AS "ListCost",
    CASE
        WHEN unit_priced THEN CAST(pricing_public_on_demand_rate * fx_rate AS DECIMAL(38, 20))
    END AS "ListUnitPrice",
    CASE
        WHEN NOT unit_priced THEN NULL
        WHEN pricing_term = 'Spot' THEN 'Dynamic'
        ELSE 'Standard'
    END AS "PricingCategory",
    line_item_currency_code AS "PricingCurrency",
    CASE WHEN unit_priced THEN line_item_unblended_rate END AS "PricingCurrencyContractedUnitPrice",
    CASE WHEN charge_category = 'Purchase' THEN CAST(0 AS DECIMAL(38, 10)) ELSE line_item_unblended_cost END
        AS "PricingCurrencyEffectiveCost",
    CASE WHEN unit_priced THEN pricing_public_on_demand_rate END AS "PricingCurrencyListUnitPrice",
    CASE WHEN unit_priced THEN quantity END AS "PricingQuantity",
    CASE WHEN unit_priced THEN COALESCE(unit, 'Units') END AS "PricingUnit",
    -- The customer buys from the reseller, who issues the invoice: the provider. AWS (or a
    -- Marketplace seller) publishes the service. (FOCUS: BilledCost is 0 where the provider is
    -- not the invoice issuer, i.e. someone else is paid.)
    invoice_issuer AS "ProviderName",
    CASE
        WHEN custom THEN invoice_issuer
        WHEN bill_billing_entity = 'AWS Marketplace'
            THEN COALESCE(NULLIF(line_item_legal_entity, ''), 'AWS Marketplace')
        ELSE 'AWS'
    END AS "PublisherName",
    NULLIF(product_region_code, '') AS "RegionId",
    CASE
        WHEN NULLIF(product_region_code, '') IS NOT NULL
            THEN COALESCE(NULLIF(product_location, ''), product_region_code)
    END AS "RegionName",
    NULLIF(line_item_resource_id, '') AS "ResourceId",
    CAST(NULL AS VARCHAR) AS "ResourceName",
    CASE
        WHEN NULLIF(line_item_resource_id, '') IS NOT NULL
            THEN COALESCE(NULLIF(product_product_family, ''), service_name)
    END AS "ResourceType",
    COALESCE(service_category, 'Other') AS "ServiceCategory",
    service_name AS "ServiceName",
    COALESCE(service_subcategory, 'Other (Other)') AS "ServiceSubcategory",
    sku_id AS "SkuId",
    CASE WHEN sku_id IS NOT NULL THEN NULLIF(line_item_usage_type, '') END AS "SkuMeter",
    CAST(NULL AS VARCHAR) AS "SkuPriceDetails",
    CASE WHEN unit_priced THEN COALESCE(NULLIF(pricing_rate_code, ''), sku_id) END AS "SkuPriceId",
    line_item_usage_account_id AS "SubAccountId",
    COALESCE(NULLIF(line_item_usage_account_name, ''), line_item_usage_account_id) AS "SubAccountName",
    'AWS Account' AS "SubAccountType",
    focus_tags(resource_tags) AS "Tags",
    line_item_product_code AS "x_ServiceCode",
    NULLIF(line_item_usage_type, '') AS "x_UsageType",
    NULLIF(line_item_operation, '') AS "x_Operation",
    billing_period,
    billing_group
FROM priced
