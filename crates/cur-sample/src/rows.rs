//! Line items: what a row is (compactly, as catalog indices and fixed-point numbers) and how a
//! file's rows are generated, monthly lines first, then hourly usage events.

use crate::catalog::{
    ACCOUNTS, ACME_MANAGEMENT, ACME_PRODUCTION, Account, Amount, Catalog, EC2, GLOBEX_MANAGEMENT,
    GLOBEX_PRODUCTION, INITECH_PRODUCTION, Item, PAYERS, Payer, REGIONS, RI_AMORTIZED, RI_OWNER,
    RI_RECURRING, RI_USER, Region, S3, SKUS, SP_OWNER, SP_RATE_PERCENT,
};
use crate::fixed::{NONE, SCALE, fixed, fixed_mul, percent_of, round_div};
use crate::plan::{Job, PeriodInfo};
use crate::rng::Rng;

/// Chances, per mille, of each kind of hourly event. The first three are drawn for every event;
/// the others only where they apply (the Savings Plan on acme's EC2 instances, the reservation
/// in globex-production, bundled discounts on data transfer out, and each organization's own
/// private pricing), in this order.
const P_MARKETPLACE: u64 = 4;
const P_CREDIT: u64 = 2;
const P_REFUND: u64 = 1;
const P_SAVINGS_PLAN: u64 = 450;
const P_RESERVED: u64 = 250;
const P_BUNDLED: u64 = 500;
const P_PRIVATE_RATE: u64 = 400;
const P_EDP: u64 = 120;
const P_SPP: u64 = 150;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Usage,
    Fee,
    DiscountedUsage,
    RiFee,
    SavingsPlanCoveredUsage,
    SavingsPlanNegation,
    SavingsPlanRecurringFee,
    Credit,
    Refund,
    Tax,
    EdpDiscount,
    PrivateRateDiscount,
    BundledDiscount,
    SppDiscount,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "Usage",
            Kind::Fee => "Fee",
            Kind::DiscountedUsage => "DiscountedUsage",
            Kind::RiFee => "RIFee",
            Kind::SavingsPlanCoveredUsage => "SavingsPlanCoveredUsage",
            Kind::SavingsPlanNegation => "SavingsPlanNegation",
            Kind::SavingsPlanRecurringFee => "SavingsPlanRecurringFee",
            Kind::Credit => "Credit",
            Kind::Refund => "Refund",
            Kind::Tax => "Tax",
            Kind::EdpDiscount => "EdpDiscount",
            Kind::PrivateRateDiscount => "PrivateRateDiscount",
            Kind::BundledDiscount => "BundledDiscount",
            Kind::SppDiscount => "SppDiscount",
        }
    }

    /// Lines that meter a resource's usage (and so carry its pricing, unit and tags).
    pub(crate) fn is_usage(self) -> bool {
        matches!(
            self,
            Kind::Usage
                | Kind::DiscountedUsage
                | Kind::SavingsPlanCoveredUsage
                | Kind::SavingsPlanNegation
        )
    }

    pub(crate) fn is_savings_plan(self) -> bool {
        matches!(
            self,
            Kind::SavingsPlanCoveredUsage
                | Kind::SavingsPlanNegation
                | Kind::SavingsPlanRecurringFee
        )
    }

    pub(crate) fn is_reservation(self) -> bool {
        matches!(self, Kind::DiscountedUsage | Kind::RiFee)
    }
}

/// A discount shown on a usage line (`discount` map, net columns) and as its own line item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discount {
    Edp,
    PrivateRate,
    Spp,
    Bundled,
}

impl Discount {
    fn line(self) -> Kind {
        match self {
            Discount::Edp => Kind::EdpDiscount,
            Discount::PrivateRate => Kind::PrivateRateDiscount,
            Discount::Spp => Kind::SppDiscount,
            Discount::Bundled => Kind::BundledDiscount,
        }
    }

    /// The key in the `discount` map.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Discount::Edp => "edp_discount",
            Discount::PrivateRate => "private_rate_discount",
            Discount::Spp => "spp_discount",
            Discount::Bundled => "bundled_discount",
        }
    }
}

pub(crate) const NO_RESOURCE: u16 = u16::MAX;

/// One line item, compactly: catalog indices and fixed-point numbers ([`NONE`] = null). Columns
/// are rendered from it one at a time, so a row group never holds its strings all at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    /// Row number within the period.
    pub(crate) ordinal: u64,
    pub(crate) kind: Kind,
    pub(crate) account: u8,
    pub(crate) item: u16,
    pub(crate) resource: u16,
    pub(crate) start_hour: u16,
    pub(crate) hours: u16,
    pub(crate) amount: i64,
    pub(crate) rate: i64,
    pub(crate) cost: i64,
    pub(crate) public_rate: i64,
    pub(crate) public_cost: i64,
    pub(crate) net_rate: i64,
    pub(crate) net_cost: i64,
    pub(crate) discount: i64,
    pub(crate) discount_kind: Option<Discount>,
    /// Savings Plan rate of covered usage.
    pub(crate) commitment_rate: i64,
    /// Savings Plan or reservation effective cost of covered usage.
    pub(crate) commitment_cost: i64,
    /// Reservation amortized upfront cost of covered usage.
    pub(crate) upfront: i64,
}

impl Row {
    fn blank(kind: Kind, account: u8, item: u16) -> Self {
        Self {
            ordinal: 0,
            kind,
            account,
            item,
            resource: NO_RESOURCE,
            start_hour: 0,
            hours: 1,
            amount: NONE,
            rate: NONE,
            cost: 0,
            public_rate: NONE,
            public_cost: NONE,
            net_rate: NONE,
            net_cost: NONE,
            discount: NONE,
            discount_kind: None,
            commitment_rate: NONE,
            commitment_cost: NONE,
            upfront: NONE,
        }
    }
}

/// What generating or rendering a row needs besides the row: the bill and the period.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) cat: &'a Catalog,
    pub(crate) period: &'a PeriodInfo,
}

impl<'a> Ctx<'a> {
    pub(crate) fn item(&self, r: &Row) -> &'a Item {
        &self.cat.items[r.item as usize]
    }

    pub(crate) fn account(&self, r: &Row) -> &'static Account {
        &ACCOUNTS[r.account as usize]
    }

    pub(crate) fn payer(&self, r: &Row) -> &'static Payer {
        &PAYERS[self.account(r).payer]
    }

    pub(crate) fn region(&self, r: &Row) -> Option<&'static Region> {
        self.item(r).region.map(|i| &REGIONS[i])
    }
}

/// Produces one file's rows: the period's monthly lines first (first file only), then hourly
/// usage events of one or two lines each.
pub(crate) struct Generator<'a> {
    ctx: Ctx<'a>,
    rng: Rng,
    next_ordinal: u64,
    left: u64,
    /// Lines still to emit before drawing a new event, in reverse order.
    queue: Vec<Row>,
}

impl<'a> Generator<'a> {
    pub(crate) fn new(ctx: Ctx<'a>, rng: Rng, job: &Job) -> Self {
        let mut generator = Self {
            ctx,
            rng,
            next_ordinal: job.first_ordinal,
            left: job.rows,
            queue: Vec::new(),
        };
        if job.file == 0 {
            let mut monthly = generator.monthly_lines();
            monthly.reverse();
            generator.queue = monthly;
        }
        generator
    }

    pub(crate) fn fill(&mut self, out: &mut Vec<Row>, n: usize) {
        while out.len() < n {
            if self.queue.is_empty() {
                // A pair never straddles the end of the file: the row count stays exact and
                // every discount line sits beside its usage line.
                let pair_fits = self.left >= 2;
                let (first, second) = self.event(pair_fits);
                self.queue.extend(second);
                self.queue.push(first);
            }
            let mut row = self.queue.pop().expect("queue refilled");
            row.ordinal = self.next_ordinal;
            self.next_ordinal += 1;
            self.left -= 1;
            out.push(row);
        }
    }

    /// The once-a-month lines: commitment fees, support, subscriptions, taxes, credits.
    fn monthly_lines(&mut self) -> Vec<Row> {
        let cat = self.ctx.cat;
        let period = self.ctx.period;
        let hours = i64::from(period.hours) * SCALE;
        let mut lines = Vec::new();
        let mut monthly =
            |kind: Kind, account: u8, item: u16, amount: i64, rate: i64, cost: i64| {
                let mut row = Row::blank(kind, account, item);
                row.hours = period.hours;
                row.amount = amount;
                row.rate = rate;
                row.cost = cost;
                row.net_cost = cost;
                row.net_rate = rate;
                lines.push(row);
                lines.len() - 1
            };
        let rng = &mut self.rng;
        let mut dollars = |lo: i64, hi: i64| rng.between(lo * 100, hi * 100) * (SCALE / 100);

        let ri_amount = hours * period.ri_count;
        let ri_rate = cat.items[cat.ri_fee as usize].rate;
        let ri = monthly(
            Kind::RiFee,
            RI_OWNER,
            cat.ri_fee,
            ri_amount,
            ri_rate,
            fixed_mul(ri_amount, ri_rate),
        );
        let sp = monthly(
            Kind::SavingsPlanRecurringFee,
            SP_OWNER,
            cat.sp_fee,
            hours,
            period.sp_commitment,
            fixed_mul(hours, period.sp_commitment),
        );

        let business = [
            (ACME_MANAGEMENT, dollars(100, 1500)),
            (GLOBEX_MANAGEMENT, dollars(100, 900)),
        ];
        for (account, cost) in business {
            monthly(Kind::Fee, account, cat.business_support, SCALE, cost, cost);
        }
        monthly(
            Kind::Fee,
            INITECH_PRODUCTION,
            cat.developer_support,
            SCALE,
            fixed("29"),
            fixed("29"),
        );
        let subscription = dollars(300, 600);
        let marketplace = monthly(
            Kind::Fee,
            ACME_PRODUCTION,
            cat.marketplace_fee,
            SCALE,
            subscription,
            subscription,
        );

        for account in 0..ACCOUNTS.len() as u8 {
            let tax = dollars(20, 800);
            monthly(Kind::Tax, account, cat.ec2, SCALE, NONE, tax);
        }
        let s3_tax = dollars(5, 120);
        monthly(Kind::Tax, ACME_MANAGEMENT, cat.s3, SCALE, NONE, s3_tax);
        let credit = -dollars(250, 2500);
        monthly(Kind::Credit, ACME_MANAGEMENT, cat.ec2, SCALE, NONE, credit);
        let credit = -dollars(100, 1000);
        monthly(
            Kind::Credit,
            GLOBEX_PRODUCTION,
            cat.lambda,
            SCALE,
            NONE,
            credit,
        );
        let refund = -dollars(10, 300);
        monthly(
            Kind::Refund,
            GLOBEX_MANAGEMENT,
            cat.rds,
            SCALE,
            NONE,
            refund,
        );

        // Commitment fees name their commitment as the resource; Marketplace shows no public
        // price (on-demand cost 0) although it charges.
        lines[ri].resource = 0;
        lines[sp].resource = 0;
        lines[marketplace].public_rate = 0;
        lines[marketplace].public_cost = 0;
        lines
    }

    /// One hourly event: a usage line, possibly with its discount or negation line.
    fn event(&mut self, pair_fits: bool) -> (Row, Option<Row>) {
        let account = self.ctx.cat.accounts.pick(&mut self.rng) as u8;
        let roll = self.rng.below(1000);
        if roll < P_MARKETPLACE {
            let mut usage = self.usage(account, self.ctx.cat.marketplace_usage);
            usage.public_rate = NONE;
            usage.public_cost = NONE;
            return (usage, None);
        }
        if roll < P_MARKETPLACE + P_CREDIT + P_REFUND {
            let kind = if roll < P_MARKETPLACE + P_CREDIT {
                Kind::Credit
            } else {
                Kind::Refund
            };
            return (self.adjustment(kind, account), None);
        }

        let acct = &ACCOUNTS[account as usize];
        let payer = &PAYERS[acct.payer];
        if account == RI_USER && self.rng.per_mille(P_RESERVED) {
            return (self.reserved(account), None);
        }
        let sku = self.ctx.cat.skus.pick(&mut self.rng);
        let region = acct.regions[self.ctx.cat.regions[account as usize].pick(&mut self.rng)].0;
        let item = (sku * REGIONS.len() + region) as u16;
        let usage = self.usage(account, item);
        if !pair_fits {
            return (usage, None);
        }
        let spec = &SKUS[sku];
        let instance = spec.service.code == EC2.code && spec.instance.is_some();
        if acct.payer == ACCOUNTS[SP_OWNER as usize].payer
            && instance
            && self.rng.per_mille(P_SAVINGS_PLAN)
        {
            return self.savings_plan(usage);
        }
        if spec.usage == "DataTransfer-Out-Bytes" && self.rng.per_mille(P_BUNDLED) {
            return discounted(usage, Discount::Bundled, 100);
        }
        if payer.s3_private_percent > 0
            && spec.service.code == S3.code
            && self.rng.per_mille(P_PRIVATE_RATE)
        {
            return discounted(usage, Discount::PrivateRate, payer.s3_private_percent);
        }
        if payer.edp_percent > 0 && self.rng.per_mille(P_EDP) {
            return discounted(usage, Discount::Edp, payer.edp_percent);
        }
        if payer.spp_percent > 0 && self.rng.per_mille(P_SPP) {
            return discounted(usage, Discount::Spp, payer.spp_percent);
        }
        (usage, None)
    }

    /// An on-demand usage line at the public rate.
    fn usage(&mut self, account: u8, item: u16) -> Row {
        let it = &self.ctx.cat.items[item as usize];
        let amount = self.amount(it.amount);
        let cost = fixed_mul(amount, it.rate);
        let mut row = Row::blank(Kind::Usage, account, item);
        row.resource = match it.resource.pool() {
            0 => NO_RESOURCE,
            pool => self.rng.below(pool) as u16,
        };
        row.start_hour = self.rng.below(u64::from(self.ctx.period.hours)) as u16;
        row.amount = amount;
        row.rate = it.rate;
        row.cost = cost;
        row.public_rate = it.rate;
        row.public_cost = cost;
        row.net_rate = it.rate;
        row.net_cost = cost;
        row
    }

    fn amount(&mut self, model: Amount) -> i64 {
        let rng = &mut self.rng;
        match model {
            Amount::Hours if rng.per_mille(850) => SCALE,
            Amount::Hours => round_div(rng.between(60, 3599) as i128 * SCALE as i128, 3600),
            Amount::PerMonth { min, max } => {
                let units_milli = rng.between(min * 1000, max * 1000);
                round_div(
                    units_milli as i128 * (SCALE / 1000) as i128,
                    i128::from(self.ctx.period.hours),
                )
            }
            Amount::Metered { max } => rng.between(1, max * SCALE),
            Amount::Count { max } => rng.between(1, max) * SCALE,
            Amount::One => SCALE,
        }
    }

    /// EC2 usage covered by acme-production's Savings Plan, and its negation.
    fn savings_plan(&mut self, usage: Row) -> (Row, Option<Row>) {
        let mut covered = usage;
        covered.kind = Kind::SavingsPlanCoveredUsage;
        covered.commitment_rate = percent_of(usage.rate, SP_RATE_PERCENT);
        covered.commitment_cost = fixed_mul(usage.amount, covered.commitment_rate);
        let mut negation = usage;
        negation.kind = Kind::SavingsPlanNegation;
        negation.rate = -usage.rate;
        negation.cost = -usage.cost;
        negation.net_rate = -usage.rate;
        negation.net_cost = -usage.cost;
        negation.public_rate = NONE;
        negation.public_cost = NONE;
        (covered, Some(negation))
    }

    /// m5.xlarge usage in globex-production covered by globex-management's reservation: no
    /// unblended cost; the reservation's effective cost carries it.
    fn reserved(&mut self, account: u8) -> Row {
        let mut row = self.usage(account, self.ctx.cat.ri_usage);
        row.kind = Kind::DiscountedUsage;
        row.rate = 0;
        row.cost = 0;
        row.net_rate = 0;
        row.net_cost = 0;
        row.upfront = fixed_mul(row.amount, fixed(RI_AMORTIZED));
        row.commitment_cost = fixed_mul(row.amount, fixed(RI_RECURRING)) + row.upfront;
        row
    }

    /// A one-hour credit or refund against a service.
    fn adjustment(&mut self, kind: Kind, account: u8) -> Row {
        let cat = self.ctx.cat;
        let services = [cat.ec2, cat.s3, cat.rds, cat.lambda];
        let item = services[self.rng.below(services.len() as u64) as usize];
        let mut row = Row::blank(kind, account, item);
        row.start_hour = self.rng.below(u64::from(self.ctx.period.hours)) as u16;
        row.amount = SCALE;
        row.cost = -self.rng.between(1, 5_000) * (SCALE / 1000);
        row.net_cost = row.cost;
        row
    }
}

/// Splits a usage line into its discounted form and the discount's own (negative) line item.
fn discounted(mut usage: Row, kind: Discount, percent: i64) -> (Row, Option<Row>) {
    let discount = percent_of(usage.cost, percent);
    usage.discount = -discount;
    usage.discount_kind = Some(kind);
    usage.net_cost = usage.cost - discount;
    usage.net_rate = percent_of(usage.rate, 100 - percent);
    let mut line = Row::blank(kind.line(), usage.account, usage.item);
    line.resource = usage.resource;
    line.start_hour = usage.start_hour;
    line.amount = 0;
    line.cost = -discount;
    // The usage line's net cost already includes the discount: counting it again would not add up.
    line.net_cost = 0;
    (usage, Some(line))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use arrow::record_batch::RecordBatch;
    use rust_decimal::{Decimal, RoundingStrategy};

    use crate::catalog::{RI_ARN, SP_ARN};
    use crate::fixed::cost_decimal;
    use crate::testing::{doubles, generate, options, read_all, strings};

    #[tokio::test]
    async fn content_exercises_every_feature() {
        let (store, summary) = generate(&options(20_000, 42)).await;
        let batches = read_all(&store, &summary.files).await;
        assert_eq!(
            batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
            20_000
        );
        assert_eq!(summary.rows, 20_000);

        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        let mut total = Decimal::ZERO;
        let mut ids = HashSet::new();
        let mut seen = HashSet::new();
        for b in &batches {
            let kind = strings(b, "line_item_line_item_type");
            let account = strings(b, "line_item_usage_account_id");
            let payer = strings(b, "bill_payer_account_id");
            let usage_type = strings(b, "line_item_usage_type");
            let product = strings(b, "line_item_product_code");
            let entity = strings(b, "bill_billing_entity");
            let sp_arn = strings(b, "savings_plan_savings_plan_a_r_n");
            let ri_arn = strings(b, "reservation_reservation_a_r_n");
            let rate = strings(b, "line_item_unblended_rate");
            let public_rate = strings(b, "pricing_public_on_demand_rate");
            let operation = strings(b, "line_item_operation");
            let cost = doubles(b, "line_item_unblended_cost");
            let public_cost = doubles(b, "pricing_public_on_demand_cost");
            let amount = doubles(b, "line_item_usage_amount");
            for (i, id) in strings(b, "identity_line_item_id").into_iter().enumerate() {
                assert!(
                    ids.insert(id.unwrap().to_string()),
                    "duplicate line item id"
                );
                let k = kind[i].unwrap();
                *types.entry(k.to_string()).or_default() += 1;
                let c = cost[i].unwrap();
                total += cost_decimal(c);
                let (acct, pay) = (account[i].unwrap(), payer[i].unwrap());
                let expected_payer = match acct {
                    "111111111111" | "222222222222" | "333333333333" => "111111111111",
                    "444444444444" | "555555555555" => "444444444444",
                    "666666666666" | "888888888888" => "777777777777",
                    other => panic!("unexpected account {other}"),
                };
                assert_eq!(pay, expected_payer);
                match k {
                    "Usage" if entity[i] == Some("AWS") => {
                        // cost = round(amount × rate, 10), exactly.
                        let r: Decimal = rate[i].unwrap().parse().unwrap();
                        let a = cost_decimal(amount[i].unwrap());
                        let expected = (a * r)
                            .round_dp_with_strategy(10, RoundingStrategy::MidpointAwayFromZero);
                        assert_eq!(cost_decimal(c), expected, "{k} {:?}", usage_type[i]);
                        assert_eq!(public_cost[i], cost[i]);
                        if usage_type[i] == Some("USW2-BoxUsage:m5.large")
                            && operation[i] == Some("RunInstances")
                        {
                            assert_eq!(public_rate[i], Some("0.0960000000"));
                            seen.insert("m5.large");
                        }
                    }
                    "Usage" => {
                        assert_eq!(entity[i], Some("AWS Marketplace"));
                        assert!(public_cost[i].is_none() && c > 0.0);
                        seen.insert("marketplace usage");
                    }
                    "Fee" if entity[i] == Some("AWS Marketplace") => {
                        assert_eq!(public_cost[i], Some(0.0));
                        seen.insert("marketplace fee");
                    }
                    "Fee" if product[i] == Some("AWSSupportBusiness") => {
                        seen.insert("support");
                    }
                    "SavingsPlanCoveredUsage"
                    | "SavingsPlanNegation"
                    | "SavingsPlanRecurringFee" => {
                        assert_eq!(sp_arn[i], Some(SP_ARN));
                        if k == "SavingsPlanRecurringFee" {
                            assert_eq!(acct, "222222222222");
                        } else {
                            assert!(matches!(
                                acct,
                                "111111111111" | "222222222222" | "333333333333"
                            ));
                            assert_eq!(product[i], Some("AmazonEC2"));
                        }
                        if k == "SavingsPlanCoveredUsage" && acct == "333333333333" {
                            seen.insert("sp outside group");
                        }
                        if k == "SavingsPlanNegation" {
                            assert!(c <= 0.0);
                        }
                    }
                    "DiscountedUsage" | "RIFee" => {
                        assert_eq!(ri_arn[i], Some(RI_ARN));
                        assert_eq!(
                            acct,
                            if k == "RIFee" {
                                "444444444444"
                            } else {
                                "555555555555"
                            }
                        );
                        if k == "DiscountedUsage" {
                            assert_eq!(c, 0.0);
                            assert!(public_cost[i].unwrap() > 0.0);
                        }
                    }
                    "Credit"
                    | "Refund"
                    | "EdpDiscount"
                    | "PrivateRateDiscount"
                    | "BundledDiscount"
                    | "SppDiscount" => {
                        assert!(
                            c < 0.0 || (c == 0.0 && k != "Credit" && k != "Refund"),
                            "{k} {c}"
                        );
                    }
                    _ => {}
                }
            }
        }
        for kind in [
            "Usage",
            "Fee",
            "DiscountedUsage",
            "RIFee",
            "SavingsPlanCoveredUsage",
            "SavingsPlanNegation",
            "SavingsPlanRecurringFee",
            "Credit",
            "Refund",
            "Tax",
            "EdpDiscount",
            "PrivateRateDiscount",
            "BundledDiscount",
            "SppDiscount",
        ] {
            assert!(types.contains_key(kind), "no {kind} line in {types:?}");
        }
        assert!(
            types["Usage"] * 2 > 20_000,
            "most lines are Usage: {types:?}"
        );
        for feature in [
            "m5.large",
            "marketplace usage",
            "marketplace fee",
            "support",
            "sp outside group",
        ] {
            assert!(seen.contains(feature), "missing {feature}");
        }
        assert_eq!(total, summary.unblended_total);
    }
}
