//! The run's read path on a few CUR rows a real bill could hold, and many it could not: billing
//! period starts anywhere in the representable range (a zeroed INT96, the year 900), missing
//! and inverted usage times, costs that are NaN, infinite or huge, rates in any notation or
//! none, unknown line item types, other currencies, maps with odd keys, commitment ARNs of any
//! shape, line items delivered twice. Each period is found, its bill currencies checked, rated
//! and accounted, and checked as `rerate run` does before it writes (unbillable rows, duplicates,
//! reconciliation to the input); each step either passes or fails with exit code 1 and a
//! message. It never panics, and no internal check trips. (Writing is our own data, covered by
//! the tests.)

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, Float64Array, MapBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use libfuzzer_sys::fuzz_target;
use parquet::arrow::ArrowWriter;
use rerate::Error;
use rerate::ingest::checks;
use rerate::job::Job;
use rerate::price;

const CONFIG: &str = r#"
[engine]
target-partitions = 1

[[billing-group]]
name = "acme"
payer-account-id = "111111111111"
pricing-plan = "reseller"

[[billing-group]]
name = "globex"
accounts = ["333333333333"]
pricing-plan = "reseller"

[[pricing-plan]]
name = "reseller"
rules = ["all-5-off", "ec2-markup"]
credits = "pass"
commitments = "group"
aws-tax = "pass"

[[pricing-rule]]
name = "all-5-off"
scope = "global"
type = "discount"
percent = 5

[[pricing-rule]]
name = "ec2-markup"
scope = "service"
service = "AmazonEC2"
type = "markup"
percent = "12.5"

[[custom-line-item]]
name = "support-fee"
billing-group = "acme"
type = "fee"
percent = 7
from = "1000-01"
description = "Support"
"#;

/// Reads the fuzzer's bytes as small choices; past the end every choice is 0.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn pick<'b>(&mut self, of: &[&'b str]) -> &'b str {
        of[self.byte() as usize % of.len()]
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }
}

const NOV_2025: i64 = 1_761_955_200_000_000;
const DAY: i64 = 86_400_000_000;

/// A billing period start: mostly real ones, sometimes any instant, a mid-month one, or none.
fn period_start(c: &mut Choices) -> Option<i64> {
    match c.byte() % 8 {
        0..=3 => Some(NOV_2025),
        4 => Some(NOV_2025 - 31 * DAY),
        5 => Some(NOV_2025 + 3 * DAY),
        6 => Some(c.i64()),
        _ => None,
    }
}

fn cost(c: &mut Choices) -> Option<f64> {
    match c.byte() % 10 {
        0 => Some(1.25),
        1 => Some(0.0),
        2 => Some(-3.5),
        3 => Some(1e300),
        4 => Some(f64::NAN),
        5 => Some(f64::INFINITY),
        6 => Some(1e-12),
        7 => None,
        _ => Some(f64::from_bits(c.i64() as u64)),
    }
}

fn batch(c: &mut Choices) -> RecordBatch {
    let rows = 1 + c.byte() as usize % 6;
    let mut text: Vec<(&str, Vec<Option<String>>)> = [
        "identity_line_item_id",
        "bill_payer_account_id",
        "line_item_usage_account_id",
        "line_item_line_item_type",
        "line_item_product_code",
        "line_item_usage_type",
        "line_item_operation",
        "line_item_unblended_rate",
        "line_item_currency_code",
        "savings_plan_savings_plan_a_r_n",
        "reservation_reservation_a_r_n",
        "pricing_term",
        "line_item_line_item_description",
    ]
    .into_iter()
    .map(|n| (n, Vec::new()))
    .collect();
    let (mut starts, mut usage_starts, mut usage_ends) = (Vec::new(), Vec::new(), Vec::new());
    let (mut costs, mut amounts, mut on_demand) = (Vec::new(), Vec::new(), Vec::new());
    let mut product = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for _ in 0..rows {
        let choices: [&[&str]; 13] = [
            &["a", "b", "c", "d", ""],
            &["111111111111", "999999999999", "", "0111111111111"],
            &["222222222222", "111111111111", "333333333333", ""],
            &[
                "Usage",
                "Usage",
                "Tax",
                "Credit",
                "SavingsPlanCoveredUsage",
                "DiscountedUsage",
                "RIFee",
                "Fee",
                "Refund",
                "BundledDiscount",
                "SavingsPlanNegation",
                "Weird",
                "",
            ],
            &["AmazonEC2", "AWSSupportBusiness", "AmazonS3", ""],
            &["USE1-BoxUsage:m5.large", "", "Ω"],
            &["RunInstances", ""],
            &[
                "0.0100000000",
                "1.66667e-05",
                "",
                "abc",
                "1e400",
                "-0",
                "1E+2",
                " 0.5",
            ],
            &["USD", "USD", "EUR", "CNY", ""],
            &[
                "",
                "arn:aws:savingsplans::999999999999:savingsplan/sp-1",
                "arn:aws:savingsplans::111111111111:savingsplan/sp-2",
                "garbage",
                ":::::",
            ],
            &[
                "",
                "arn:aws:ec2:us-east-1:222222222222:reserved-instances/ri-1",
                "x:y",
            ],
            &["OnDemand", "Reserved", ""],
            &[
                "",
                "USD 0.096 per On Demand Linux m5.large Instance Hour",
                "reserved instance applied",
            ],
        ];
        for ((_, values), of) in text.iter_mut().zip(choices) {
            let v = c.pick(of);
            values.push((c.byte() % 16 != 0).then(|| v.to_string()));
        }
        let start = period_start(c);
        starts.push(start);
        let usage = start.map(|s| s.wrapping_add(i64::from(c.byte()) * 3_600_000_000));
        usage_starts.push(usage);
        usage_ends.push(match c.byte() % 4 {
            0 => None,
            1 => usage.map(|u| u.wrapping_sub(3_600_000_000)),
            _ => usage.map(|u| u.wrapping_add(3_600_000_000)),
        });
        costs.push(cost(c));
        amounts.push(cost(c));
        on_demand.push(cost(c));
        for _ in 0..c.byte() % 3 {
            product
                .keys()
                .append_value(c.pick(&["product_name", "region", "", "product_name"]));
            product.values().append_value(c.pick(&["EC2", "", "ü"]));
        }
        product.append(c.byte() % 8 != 0).unwrap();
    }
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let at = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    };
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (name, values) in text {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(values)));
    }
    for (name, values) in [
        ("bill_billing_period_start_date", starts),
        ("line_item_usage_start_date", usage_starts),
        ("line_item_usage_end_date", usage_ends),
    ] {
        fields.push(Field::new(name, timestamp.clone(), true));
        columns.push(at(values));
    }
    for (name, values) in [
        ("line_item_unblended_cost", costs),
        ("line_item_usage_amount", amounts),
        ("pricing_public_on_demand_cost", on_demand),
    ] {
        fields.push(Field::new(name, DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from(values)));
    }
    let product = product.finish();
    fields.push(Field::new("product", product.data_type().clone(), true));
    columns.push(Arc::new(product));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("columns fit")
}

fn scratch() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "rerate-fuzz-run-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn config() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("rerate-fuzz-run-{}.toml", std::process::id()));
        std::fs::write(&path, CONFIG).unwrap();
        path
    })
}

/// What `rerate run` does with a period before its first write.
async fn read_and_rate(input: &Path) -> rerate::Result<()> {
    let config = rerate::load_config(config())?;
    let job = Job::open(config, Some(&input.display().to_string()))?;
    let found = job.discover().await?;
    let ctx = &job.ctx;
    let periods = match found.periods(ctx).await {
        Ok(periods) => periods,
        Err(e) => return Err(found.blame(ctx, None, e).await),
    };
    let selected: Vec<_> = periods.keys().copied().collect();
    let currencies = price::currency::find(ctx, &found, &selected, &job.config).await?;
    job.config
        .check_fx(&selected, |p, g| currencies.of(p, g).to_string())?;
    for (&period, counted) in &periods {
        let cur = found.period_table(ctx, period)?;
        if let Err(e) = price::rated(ctx, job.cluster.as_ref(), &job.config, period, cur).await {
            return Err(found.blame(ctx, Some(period), e).await);
        }
        let accounting = match job.accounting().await {
            Ok(accounting) => accounting,
            Err(e) => return Err(found.blame(ctx, Some(period), e).await),
        };
        if let Some((what, rows)) = price::unbillable(&accounting) {
            return Err(checks::refuse(ctx, &found, period, what, rows).await);
        }
        checks::duplicates(&job, &found, period).await?;
        // Not the input's fault when it fails: the accounting lost or doubled rows.
        if let Err(e) = rerate::run::reconcile(period, *counted, &accounting) {
            panic!("{}", rerate::error_chain(&e));
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let batch = batch(&mut Choices(data));
    let dir = scratch();
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join("part.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(read_and_rate(&dir));
    std::fs::remove_dir_all(&dir).ok();
    if let Err(e) = result {
        let msg = rerate::error_chain(&e);
        assert!(
            !matches!(e, Error::Internal { .. } | Error::AccountingMismatch { .. }),
            "an internal check tripped: {msg}"
        );
        assert_eq!(e.exit_code(), 1, "bad data is the user's to fix: {msg}");
        assert!(!msg.is_empty());
    }
});
