-- rerate_job.sql: the job `rerate run --config sample-data/billing.toml` does, written by hand
-- as one DuckDB script, the way a data engineer would: the honest peer benches/compare.py
-- times rerate against. Same input, same rules and policies, same amounts to the last decimal;
-- it writes billable, pro forma and margin as Hive-partitioned Parquet (no Delta log, no
-- invoices, no per-group exports: rerate does more work than this).
--
-- Run it with benches/duckdb/run_job.py, or in the duckdb CLI:
--   SET VARIABLE input = '/path/to/cur'; SET VARIABLE output = '/path/to/out';
--   SET VARIABLE line_item_types = 'sql/line_item_types.csv';
--   .read benches/duckdb/rerate_job.sql
-- `input` is a CUR 2.0 export (<input>/data/BILLING_PERIOD=YYYY-MM/*.parquet); `output` must
-- exist. Writes <output>/{billable,proforma,margin}/billing_period=P/billing_group=G/*.parquet.
--
-- The logic mirrors sql/rate.sql; comments say why where DuckDB needs it said differently.

-- The COPYs below write millions of rows; they need not keep input order, which lets DuckDB
-- stream them in parallel with bounded memory.
SET preserve_insertion_order = false;

-- ---------------------------------------------------------------------------------------------
-- The config (sample-data/billing.toml) as small tables: rules are data, joined, not pasted.
-- ---------------------------------------------------------------------------------------------

-- Explicit account lists (standard groups); they beat organizations.
CREATE TEMP TABLE group_accounts (account_id VARCHAR, billing_group VARCHAR);
INSERT INTO group_accounts VALUES
    ('333333333333', 'acme-labs'),
    ('666666666666', 'initech');

-- Whole bill-source organizations, by payer account.
CREATE TEMP TABLE group_orgs (payer_account_id VARCHAR, billing_group VARCHAR);
INSERT INTO group_orgs VALUES
    ('111111111111', 'acme'),
    ('444444444444', 'globex'),
    ('454545454545', 'globex');

-- Rows by resource tag or cost category: they beat accounts and organizations. (The sample has
-- one match, so a row cannot be claimed twice here; rerate refuses such a row.)
CREATE TEMP TABLE group_matches (map VARCHAR, key VARCHAR, value VARCHAR, billing_group VARCHAR);
INSERT INTO group_matches VALUES ('resource_tags', 'user_team', 'research', 'acme-labs');

-- Each group's plan and the plan's policies (unset policies default to 'drop').
CREATE TEMP TABLE groups (
    billing_group VARCHAR, pricing_plan VARCHAR, credits VARCHAR, refunds VARCHAR,
    private_discounts VARCHAR, aws_tax VARCHAR, support VARCHAR, commitments VARCHAR
);
INSERT INTO groups VALUES
    ('acme',      'reseller',  'drop', 'pass', 'drop', 'drop', 'drop', 'group'),
    ('acme-labs', 'on-demand', 'drop', 'drop', 'drop', 'drop', 'drop', 'on-demand'),
    ('globex',    'partner',   'pass', 'pass', 'pass', 'pass', 'pass', 'pass'),
    ('initech',   'reseller',  'drop', 'pass', 'drop', 'drop', 'drop', 'group');

-- Every plan's price rules with their match key, their place in the plan, their validity
-- ([from, until), billing periods) and an exact factor (1 - p/100, 1 + p/100) or, for a
-- fixed-rate rule, a unit price. DECIMAL(22, 12) like rerate's, so products round identically.
CREATE TEMP TABLE rules (
    pricing_plan VARCHAR, rule_name VARCHAR, position INTEGER, kind VARCHAR, service VARCHAR,
    billing_entity VARCHAR, usage_type VARCHAR, operation VARCHAR, factor DECIMAL(22, 12),
    fixed_rate DECIMAL(22, 12), valid_from VARCHAR, valid_until VARCHAR
);
INSERT INTO rules VALUES
    ('reseller',  'all-5-off',           1, 'global',                   NULL, NULL, NULL, NULL, 0.95, NULL, NULL, NULL),
    ('reseller',  's3-10-off',           2, 'service',                  'AmazonS3', NULL, NULL, NULL, 0.90, NULL, NULL, NULL),
    ('reseller',  'm5-markup',           3, 'sku-usage-type-operation', 'AmazonEC2', NULL,
                  'USW2-BoxUsage:m5.large', 'RunInstances', 1.20, NULL, NULL, NULL),
    ('reseller',  'marketplace-at-cost', 4, 'billing-entity',           NULL, 'AWS Marketplace', NULL, NULL, 1.00, NULL, NULL, NULL),
    ('on-demand', 'ec2-3-off',           1, 'service',                  'AmazonEC2', NULL, NULL, NULL, 0.97, NULL, NULL, NULL),
    ('on-demand', 'all-1-markup',        2, 'global',                   NULL, NULL, NULL, NULL, 1.01, NULL, NULL, NULL),
    ('partner',   'gp3-fixed',           1, 'sku-usage-type',           'AmazonEC2', NULL,
                  'EU-EBS:VolumeUsage.gp3', NULL, NULL, 0.07, NULL, NULL),
    ('partner',   'all-2-markup',        2, 'global',                   NULL, NULL, NULL, NULL, 1.025, NULL, NULL, '2026-06'),
    ('partner',   'all-3-markup',        3, 'global',                   NULL, NULL, NULL, NULL, 1.03, NULL, '2026-06', NULL);
-- (lambda-free-tier keeps AWS's free tier: not a price, so not a rule here either.)

-- Plans that stack their rules in order (the others apply the most specific one).
CREATE TEMP TABLE ordered_plans (pricing_plan VARCHAR);
INSERT INTO ordered_plans VALUES ('on-demand');

-- Credit exceptions, tried in order before the plan's `credits` (globs as LIKE patterns).
CREATE TEMP TABLE credit_exceptions (
    pricing_plan VARCHAR, position INTEGER, pattern VARCHAR, service VARCHAR, policy VARCHAR
);
INSERT INTO credit_exceptions VALUES ('partner', 1, 'AWS Promotional%', 'AmazonRDS', 'drop');

-- Custom line items. `share` is the percentage as a fraction (8 % = 0.08): DuckDB divides
-- decimals in DOUBLE, so the division by 100 is done here, exactly, once.
CREATE TEMP TABLE custom_line_items (
    name VARCHAR, billing_group VARCHAR, account_id VARCHAR, payer_account_id VARCHAR,
    line_item_type VARCHAR, flat DECIMAL(38, 10), share DECIMAL(16, 8),
    base_includes VARCHAR[], service_is VARCHAR, service_not VARCHAR,
    exclude_savings_plan_negation BOOLEAN, valid_from VARCHAR, valid_until VARCHAR,
    description VARCHAR
);
INSERT INTO custom_line_items VALUES
    ('managed-service-fee', 'acme', '111111111111', '111111111111', 'Fee', 500.00, NULL,
     [], NULL, NULL, false, '2025-01', NULL, 'Managed services'),
    ('support-8pct', 'acme', '111111111111', '111111111111', 'Fee', NULL, 0.08,
     ['managed-service-fee'], NULL, 'AmazonS3', true, '2025-01', NULL,
     'Reseller support (8 % of usage and managed services)'),
    ('migration-credit', 'globex', '444444444444', '444444444444', 'Credit', 250, NULL,
     [], NULL, NULL, false, '2025-11', '2025-12', 'Migration credit');

-- ---------------------------------------------------------------------------------------------
-- The input, normalized: money exact from here on.
-- ---------------------------------------------------------------------------------------------

-- Costs are doubles in CUR, rates are strings: both become DECIMAL(38, 10) here, once (a
-- double is scaled and rounded half away from zero, as rerate does). The regex names the
-- money and rate columns of the CUR 2.0 catalog (src/ingest/columns.rs), whichever of them
-- the export holds. hive_partitioning is off: BILLING_PERIOD= folders would collide with
-- our billing_period (DuckDB names are case-insensitive); the period comes from the data.
CREATE TEMP VIEW cur AS
SELECT
    * REPLACE (discount::MAP(VARCHAR, DECIMAL(38, 10)) AS discount),
    strftime(bill_billing_period_start_date, '%Y-%m') AS billing_period
FROM (
    SELECT
        COLUMNS(lambda c: NOT regexp_matches(c,
            '^((line_item|pricing_public_on_demand|split_line_item)_.*(cost|rate)|discount_.+|reservation_.*(cost|fee|value).*|savings_plan_.*(cost|commitment|rate|to_date).*)$')),
        COLUMNS(
            '^((line_item|pricing_public_on_demand|split_line_item)_.*(cost|rate)|discount_.+|reservation_.*(cost|fee|value).*|savings_plan_.*(cost|commitment|rate|to_date).*)$'
        )::DECIMAL(38, 10)
    FROM read_parquet(getvariable('input') || '/data/**/*.parquet',
                      union_by_name = true, hive_partitioning = false)
);

-- Assignment (SPEC 5.1): an explicit account beats its organization; the rest is kept in
-- billable as '_unassigned'. The billable table needs nothing more than this.
CREATE TEMP VIEW assigned AS
SELECT
    c.*,
    COALESCE(gm.billing_group, ga.billing_group, go.billing_group, '_unassigned') AS billing_group
FROM cur c
LEFT JOIN group_matches gm
    ON (gm.map = 'resource_tags' AND c.resource_tags[gm.key] = gm.value)
    OR (gm.map = 'cost_category' AND c.cost_category[gm.key] = gm.value)
LEFT JOIN group_accounts ga ON ga.account_id = c.line_item_usage_account_id
LEFT JOIN group_orgs go ON go.payer_account_id = c.bill_payer_account_id;

-- The group of a commitment's owner, per period, from the owner's own rows (never from the
-- row using the commitment); none where the owner is no usage account, in no group, or in two.
CREATE TEMP VIEW owner_groups AS
SELECT billing_period, line_item_usage_account_id AS account_id, min(billing_group) AS billing_group
FROM assigned
WHERE billing_group <> '_unassigned' AND line_item_usage_account_id IS NOT NULL
GROUP BY ALL
HAVING count(DISTINCT billing_group) = 1;

-- ---------------------------------------------------------------------------------------------
-- Re-rating (SPEC 5.2, 5.3), as sql/rate.sql: charge class -> policy -> treatment -> rule.
-- ---------------------------------------------------------------------------------------------
-- What each line item type is: rerate's own table (sql/line_item_types.csv), read as it is.
CREATE TEMP TABLE line_item_types AS
SELECT * FROM read_csv(getvariable('line_item_types'), header = true, all_varchar = true);

-- How AWS words the on-demand line of a usage type, per period: what a line re-rated from a
-- commitment shows instead of its own description, as in sql/rate.sql.
CREATE TEMP VIEW on_demand_descriptions AS
SELECT billing_period, line_item_product_code, line_item_usage_type, line_item_operation,
       min(line_item_line_item_description) AS on_demand_description
FROM cur
WHERE pricing_term = 'OnDemand'
GROUP BY ALL;

-- The most-specific plans' rules in force in each period of the input.
CREATE TEMP VIEW in_force AS
SELECT p.billing_period, r.*
FROM (SELECT DISTINCT billing_period FROM cur) p
JOIN rules r
    ON (r.valid_from IS NULL OR r.valid_from <= p.billing_period)
   AND (r.valid_until IS NULL OR p.billing_period < r.valid_until)
WHERE r.pricing_plan NOT IN (FROM ordered_plans);

CREATE TEMP VIEW rated AS
WITH classified AS (
    SELECT
        a.*,
        lt.unowned,
        lt.shown_as,
        lt.negation = 'true' AS negation,
        -- The owner of a commitment is the account inside its ARN (arn:aws:svc:region:ACCOUNT:...).
        CASE lt.commitment
            WHEN 'savings-plan' THEN NULLIF(split_part(a.savings_plan_savings_plan_a_r_n, ':', 5), '')
            WHEN 'reservation' THEN NULLIF(split_part(a.reservation_reservation_a_r_n, ':', 5), '')
        END AS commitment_owner,
        CASE
            WHEN lt.charge_class IN ('usage', 'fee')
                 AND (a.line_item_product_code LIKE 'AWSSupport%'
                      OR a.line_item_product_code IN ('AWSDeveloperSupport', 'OCBPremiumSupport'))
                THEN 'support'
            ELSE COALESCE(lt.charge_class, 'unknown')
        END AS charge_class
    FROM assigned a
    LEFT JOIN line_item_types lt ON lt.line_item_type = a.line_item_line_item_type
),
treated AS (
    SELECT
        c.*,
        g.pricing_plan,
        CASE
            WHEN c.charge_class = 'unknown' THEN 'unknown'
            WHEN c.billing_group = '_unassigned' THEN 'unassigned'
            WHEN c.charge_class IN ('usage', 'fee') THEN 'rerate'
            WHEN c.charge_class = 'bundled-discount' THEN 'pass'
            WHEN c.charge_class = 'support' THEN g.support
            WHEN c.charge_class = 'credits' THEN COALESCE(ce.policy, g.credits)
            WHEN c.charge_class = 'refunds' THEN g.refunds
            WHEN c.charge_class = 'aws-tax' THEN g.aws_tax
            WHEN c.charge_class = 'private-discounts' THEN g.private_discounts
            -- commitments: `pass` passes all; `group` passes those owned inside the group; the
            -- rest is re-rated from on-demand (covered usage) or dropped (fees, negations).
            WHEN c.charge_class = 'commitments' AND g.commitments = 'pass' THEN 'pass'
            WHEN c.charge_class = 'commitments' AND g.commitments = 'group'
                 AND og.billing_group = c.billing_group
                THEN 'pass'
            WHEN c.charge_class = 'commitments' THEN c.unowned
            ELSE 'unknown'
        END AS treatment
    FROM classified c
    LEFT JOIN groups g ON g.billing_group = c.billing_group
    LEFT JOIN owner_groups og
        ON og.billing_period = c.billing_period AND og.account_id = c.commitment_owner
    -- The first matching credit exception of the plan, for credits only.
    LEFT JOIN (
        SELECT DISTINCT ON (a.line_item_line_item_description, a.line_item_product_code, e.pricing_plan)
               a.line_item_line_item_description AS description, a.line_item_product_code, e.pricing_plan, e.policy
        FROM (SELECT DISTINCT line_item_line_item_description, line_item_product_code
              FROM cur WHERE line_item_line_item_type = 'Credit') a
        JOIN credit_exceptions e
            ON a.line_item_line_item_description LIKE e.pattern
           AND (e.service IS NULL OR e.service = a.line_item_product_code)
        ORDER BY a.line_item_line_item_description, a.line_item_product_code, e.pricing_plan, e.position
    ) ce
        ON c.charge_class = 'credits' AND ce.pricing_plan = g.pricing_plan
       AND ce.description = c.line_item_line_item_description
       AND ce.line_item_product_code IS NOT DISTINCT FROM c.line_item_product_code
),
-- Ordered plans: every matching rule in force, in the plan's order, multiplied exactly, per
-- distinct key (the sample's ordered plan has no fixed rate and no final rule).
ordered_chains AS (
    SELECT
        k.billing_period, k.pricing_plan, k.line_item_product_code, k.line_item_usage_type,
        k.line_item_operation, k.bill_billing_entity,
        string_agg(r.rule_name, ' > ' ORDER BY r.position) AS matched_rule,
        list_reduce(list(r.factor ORDER BY r.position), lambda a, b: (a * b)::DECIMAL(22, 12)) AS factor
    FROM (SELECT DISTINCT billing_period, pricing_plan, line_item_product_code, line_item_usage_type,
                          line_item_operation, bill_billing_entity
          FROM treated WHERE pricing_plan IN (FROM ordered_plans)) k
    JOIN rules r
        ON r.pricing_plan = k.pricing_plan
       AND (r.valid_from IS NULL OR r.valid_from <= k.billing_period)
       AND (r.valid_until IS NULL OR k.billing_period < r.valid_until)
       AND (r.service IS NULL OR r.service = k.line_item_product_code)
       AND (r.usage_type IS NULL OR r.usage_type = k.line_item_usage_type)
       AND (r.operation IS NULL OR r.operation = k.line_item_operation)
       AND (r.billing_entity IS NULL OR r.billing_entity = k.bill_billing_entity)
    GROUP BY ALL
),
ruled AS (
    -- Most specific: one equi-join per rule kind (rules in force in the row's period), the most
    -- specific match wins, rules never stack. Ordered plans take their chain instead.
    SELECT
        t.*,
        CASE WHEN oc.matched_rule IS NOT NULL THEN oc.matched_rule
             ELSE COALESCE(r6.rule_name, r5.rule_name, r4.rule_name, r3.rule_name, r2.rule_name, r1.rule_name)
        END AS matched_rule,
        CASE WHEN oc.matched_rule IS NOT NULL THEN oc.factor
             WHEN r6.rule_name IS NOT NULL THEN r6.factor WHEN r5.rule_name IS NOT NULL THEN r5.factor
             WHEN r4.rule_name IS NOT NULL THEN r4.factor WHEN r3.rule_name IS NOT NULL THEN r3.factor
             WHEN r2.rule_name IS NOT NULL THEN r2.factor WHEN r1.rule_name IS NOT NULL THEN r1.factor
             ELSE 1::DECIMAL(22, 12)
        END AS factor,
        CASE WHEN oc.matched_rule IS NOT NULL THEN NULL
             WHEN r6.rule_name IS NOT NULL THEN r6.fixed_rate WHEN r5.rule_name IS NOT NULL THEN r5.fixed_rate
             WHEN r4.rule_name IS NOT NULL THEN r4.fixed_rate WHEN r3.rule_name IS NOT NULL THEN r3.fixed_rate
        END AS fixed_rate,
        -- Public on-demand is the base; fees, and lines AWS gives no public price for
        -- (Marketplace, some fees), are re-rated from their unblended amount.
        t.charge_class = 'fee' OR COALESCE(t.pricing_public_on_demand_cost, 0) = 0 AS from_unblended
    FROM treated t
    LEFT JOIN ordered_chains oc USING (billing_period, pricing_plan, line_item_product_code,
                                       line_item_usage_type, line_item_operation, bill_billing_entity)
    LEFT JOIN (FROM in_force WHERE kind = 'sku-usage-type-operation') r6
        ON r6.pricing_plan = t.pricing_plan AND r6.billing_period = t.billing_period AND r6.service = t.line_item_product_code
       AND r6.usage_type = t.line_item_usage_type AND r6.operation = t.line_item_operation
    LEFT JOIN (FROM in_force WHERE kind = 'sku-usage-type') r5
        ON r5.pricing_plan = t.pricing_plan AND r5.billing_period = t.billing_period AND r5.service = t.line_item_product_code
       AND r5.usage_type = t.line_item_usage_type
    LEFT JOIN (FROM in_force WHERE kind = 'sku-operation') r4
        ON r4.pricing_plan = t.pricing_plan AND r4.billing_period = t.billing_period AND r4.service = t.line_item_product_code
       AND r4.operation = t.line_item_operation
    LEFT JOIN (FROM in_force WHERE kind = 'service') r3
        ON r3.pricing_plan = t.pricing_plan AND r3.billing_period = t.billing_period AND r3.service = t.line_item_product_code
    LEFT JOIN (FROM in_force WHERE kind = 'billing-entity') r2
        ON r2.pricing_plan = t.pricing_plan AND r2.billing_period = t.billing_period AND r2.billing_entity = t.bill_billing_entity
    LEFT JOIN (FROM in_force WHERE kind = 'global') r1
        ON r1.pricing_plan = t.pricing_plan AND r1.billing_period = t.billing_period
)
SELECT
    * EXCLUDE (commitment_owner, matched_rule, factor, fixed_rate, from_unblended,
               unowned, shown_as, on_demand_description),
    -- Re-rated commitment usage shows as the on-demand usage it is charged as, in words too.
    treatment = 'rerate' AND shown_as IS NOT NULL AS rerated_commitment,
    CASE WHEN rerated_commitment THEN shown_as ELSE line_item_line_item_type END
        AS proforma_line_item_type,
    CASE WHEN rerated_commitment
         THEN COALESCE(on_demand_description, 'On Demand ' || line_item_usage_type)
         ELSE line_item_line_item_description
    END AS proforma_line_item_description,
    CASE WHEN treatment = 'rerate' THEN matched_rule END AS pricing_rule,
    -- DECIMAL(38,10) x DECIMAL(22,12) is DECIMAL(38,22); the cast rounds half away from zero.
    -- A unit price multiplies the usage amount, read as money is.
    CASE
        WHEN treatment = 'rerate' AND fixed_rate IS NOT NULL
            THEN CAST(line_item_usage_amount::DECIMAL(38, 10) * fixed_rate AS DECIMAL(38, 10))
        WHEN treatment = 'rerate' THEN CAST(factor * CASE WHEN from_unblended THEN line_item_unblended_cost
                                              ELSE pricing_public_on_demand_cost END AS DECIMAL(38, 10))
        WHEN treatment = 'pass' THEN line_item_unblended_cost
    END AS proforma_cost,
    CASE
        WHEN treatment = 'rerate' AND fixed_rate IS NOT NULL THEN fixed_rate::DECIMAL(38, 10)
        WHEN treatment = 'rerate' THEN CAST(factor * CASE WHEN from_unblended THEN line_item_unblended_rate
                                              ELSE pricing_public_on_demand_rate END AS DECIMAL(38, 10))
        WHEN treatment = 'pass' THEN line_item_unblended_rate
    END AS proforma_rate
FROM ruled
LEFT JOIN on_demand_descriptions USING (billing_period, line_item_product_code,
                                         line_item_usage_type, line_item_operation);

-- ---------------------------------------------------------------------------------------------
-- The accounting: where every row went, small (groups x types x services x treatments). It
-- feeds the custom line items and the margin, and says whether anything is unknown.
-- ---------------------------------------------------------------------------------------------
CREATE TEMP TABLE accounting AS
SELECT
    billing_period,
    billing_group,
    line_item_line_item_type AS line_item_type,
    line_item_product_code AS product_code,
    charge_class,
    treatment,
    negation,
    count(*) AS row_count,
    sum(line_item_unblended_cost) AS billable_cost,
    sum(proforma_cost) AS proforma_cost
FROM rated
GROUP BY ALL;

-- rerate fails a period holding a line item type it does not know; so does this job.
SELECT CASE WHEN count(*) > 0
            THEN error('unknown line item types: ' || string_agg(DISTINCT line_item_type, ', '))
       END
FROM accounting WHERE treatment = 'unknown';

-- ---------------------------------------------------------------------------------------------
-- Custom line items (SPEC 5.4), per period they are active in: flat amounts once; percentages
-- of the group's pro forma before custom items (restricted by service, optionally without
-- Savings Plan negations) plus the flat items they include. Credits are negative.
-- ---------------------------------------------------------------------------------------------
CREATE TEMP TABLE custom_charges AS
WITH active AS (
    SELECT
        p.billing_period,
        i.*,
        CASE i.line_item_type WHEN 'Credit' THEN -1 ELSE 1 END AS sign
    FROM custom_line_items i
    JOIN (SELECT DISTINCT billing_period FROM accounting) p
      ON p.billing_period >= i.valid_from
     AND (i.valid_until IS NULL OR p.billing_period < i.valid_until)
),
usage_base AS (
    SELECT a.billing_period, a.name, COALESCE(sum(acc.proforma_cost), 0) AS amount
    FROM active a
    LEFT JOIN accounting acc
      ON acc.billing_period = a.billing_period
     AND acc.billing_group = a.billing_group
     AND acc.treatment IN ('rerate', 'pass')
     AND (a.service_is IS NULL OR COALESCE(acc.product_code, '') = a.service_is)
     AND (a.service_not IS NULL OR COALESCE(acc.product_code, '') <> a.service_not)
     AND NOT (a.exclude_savings_plan_negation AND acc.negation)
    WHERE a.share IS NOT NULL
    GROUP BY ALL
),
included AS (
    -- A named flat item that is not active this period adds nothing.
    SELECT a.billing_period, a.name, sum(f.sign * f.flat) AS amount
    FROM active a
    JOIN active f
      ON f.billing_period = a.billing_period
     AND f.billing_group = a.billing_group
     AND f.flat IS NOT NULL
     AND list_contains(a.base_includes, f.name)
    GROUP BY ALL
)
SELECT
    a.billing_period, a.billing_group, a.name, a.account_id, a.payer_account_id,
    a.line_item_type, a.description,
    CAST(CASE WHEN a.flat IS NOT NULL THEN a.sign * a.flat
              -- exact product, then rounded once to the money scale, half away from zero
              ELSE a.sign * round((u.amount + COALESCE(i.amount, 0)) * a.share, 10)
         END AS DECIMAL(38, 10)) AS amount
FROM active a
LEFT JOIN usage_base u USING (billing_period, name)
LEFT JOIN included i USING (billing_period, name);

-- ---------------------------------------------------------------------------------------------
-- Outputs.
-- ---------------------------------------------------------------------------------------------

-- billable: every input row, money as decimal, plus its group.
COPY (SELECT * FROM assigned)
TO (getvariable('output') || '/billable')
(FORMAT parquet, PARTITION_BY (billing_period, billing_group), COMPRESSION zstd);

-- proforma: re-rated and passed rows, every cost and rate column carrying the pro forma value;
-- columns that would reveal billable prices or discounts (bill_invoice_id, discount*, split
-- costs) are left out, commitment details kept only where the commitment passes through.
-- Custom line items are appended as rows of their own.
COPY (
    SELECT
        COLUMNS(lambda c: NOT regexp_matches(c,
            '^(line_item_(unblended|net_unblended|blended)_(cost|rate)|line_item_line_item_(type|description)|bill_invoice_id|discount.*|reservation_.*|savings_plan_.*|split_line_item_.*_cost|pricing_term|charge_class|treatment|negation|rerated_commitment|proforma_(cost|rate|line_item_type|line_item_description))$')),
        proforma_line_item_type AS line_item_line_item_type,
        proforma_line_item_description AS line_item_line_item_description,
        -- (The sample has no pricing_rate_*, offering class, purchase option or lease length
        -- columns, which rerate also empties on these lines.)
        CASE WHEN rerated_commitment THEN 'OnDemand' ELSE pricing_term END AS pricing_term,
        proforma_cost AS line_item_unblended_cost,
        proforma_cost AS line_item_net_unblended_cost,
        proforma_cost AS line_item_blended_cost,
        proforma_rate AS line_item_unblended_rate,
        proforma_rate AS line_item_net_unblended_rate,
        proforma_rate AS line_item_blended_rate,
        CASE WHEN treatment = 'pass' THEN COLUMNS('^(reservation|savings_plan)_') END
    FROM rated
    WHERE treatment IN ('rerate', 'pass')
    UNION ALL BY NAME
    SELECT
        'custom:' || billing_period || ':' || billing_group || ':' || name AS identity_line_item_id,
        strptime(billing_period, '%Y-%m') AS bill_billing_period_start_date,
        strptime(billing_period, '%Y-%m') + INTERVAL 1 MONTH AS bill_billing_period_end_date,
        bill_billing_period_start_date AS line_item_usage_start_date,
        bill_billing_period_end_date AS line_item_usage_end_date,
        strftime(bill_billing_period_start_date, '%Y-%m-%dT%H:%M:%SZ') || '/'
            || strftime(bill_billing_period_end_date, '%Y-%m-%dT%H:%M:%SZ') AS identity_time_interval,
        payer_account_id AS bill_payer_account_id,
        account_id AS line_item_usage_account_id,
        line_item_type AS line_item_line_item_type,
        'CustomLineItem' AS line_item_product_code,
        description AS line_item_line_item_description,
        name AS line_item_usage_type,
        name AS line_item_operation,
        1.0::DOUBLE AS line_item_usage_amount,
        'USD' AS line_item_currency_code,
        'USD' AS pricing_currency,
        amount AS line_item_unblended_cost,
        amount AS line_item_net_unblended_cost,
        amount AS line_item_blended_cost,
        billing_period,
        billing_group,
        g.pricing_plan
    FROM custom_charges JOIN groups g USING (billing_group)
)
TO (getvariable('output') || '/proforma')
(FORMAT parquet, PARTITION_BY (billing_period, billing_group), COMPRESSION zstd);

-- margin: per period, group and service, billable (before AWS tax: not the reseller's cost
-- of goods) against pro forma (with custom line items, without AWS tax passed through), and
-- what each policy dropped.
COPY (
    WITH lines AS (
        SELECT
            billing_period, billing_group, COALESCE(product_code, '(none)') AS service,
            COALESCE(sum(billable_cost) FILTER (charge_class <> 'aws-tax'), 0) AS billable_cost,
            COALESCE(sum(proforma_cost) FILTER (treatment IN ('rerate', 'pass')
                                                AND charge_class <> 'aws-tax'), 0) AS proforma_cost,
            COALESCE(sum(billable_cost) FILTER (treatment = 'drop' AND charge_class = 'credits'), 0) AS dropped_credits,
            COALESCE(sum(billable_cost) FILTER (treatment = 'drop' AND charge_class = 'refunds'), 0) AS dropped_refunds,
            COALESCE(sum(billable_cost) FILTER (treatment = 'drop' AND charge_class = 'private-discounts'), 0) AS dropped_private_discounts,
            COALESCE(sum(billable_cost) FILTER (treatment = 'drop' AND charge_class = 'aws-tax'), 0) AS dropped_aws_tax,
            COALESCE(sum(billable_cost) FILTER (treatment = 'drop' AND charge_class = 'support'), 0) AS dropped_support,
            COALESCE(sum(billable_cost) FILTER (treatment = 'drop' AND charge_class = 'commitments'), 0) AS dropped_commitments
        FROM accounting
        GROUP BY ALL
        UNION ALL BY NAME
        SELECT billing_period, billing_group, 'CustomLineItem' AS service,
               0 AS billable_cost, sum(amount) AS proforma_cost
        FROM custom_charges
        GROUP BY ALL
    )
    SELECT
        billing_period, billing_group, service,
        CAST(sum(billable_cost) AS DECIMAL(38, 10)) AS billable_cost,
        CAST(sum(proforma_cost) AS DECIMAL(38, 10)) AS proforma_cost,
        CAST(sum(proforma_cost) - sum(billable_cost) AS DECIMAL(38, 10)) AS margin,
        -- A ratio, not money: DuckDB divides decimals in DOUBLE; rounded to 4 decimals.
        CAST(round(100 * (sum(proforma_cost) - sum(billable_cost)) / NULLIF(sum(proforma_cost), 0), 4)
             AS DECIMAL(38, 4)) AS margin_percent,
        CAST(COALESCE(sum(COLUMNS('^dropped_')), 0) AS DECIMAL(38, 10))
    FROM lines
    GROUP BY ALL
)
TO (getvariable('output') || '/margin')
(FORMAT parquet, PARTITION_BY (billing_period, billing_group), COMPRESSION zstd);
