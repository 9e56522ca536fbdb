//! The columns in file order, and how each one renders from a row: names, values and nulls as
//! AWS writes them.

use std::io::Write as _;

use crate::catalog::{ACCOUNTS, AWS_EMEA, RI_ARN, Resource, SP_ARN, SP_OWNER};
use crate::encode::{Column, MapOut, Render, StrBuf, StrOut};
use crate::fixed::{NONE, fixed_f64, fixed_mul, fixed_opt};
use crate::plan::PeriodInfo;
use crate::rng::{GOLDEN, mix};
use crate::rows::{Ctx, Discount, Kind, NO_RESOURCE, Row};

/// The columns in file order: grouped roughly as AWS groups them but deliberately not
/// alphabetical, because real exports vary and readers must go by name.
#[rustfmt::skip]
pub(crate) fn columns() -> Vec<Column> {
    use Render::*;
    let c = |name, render| Column { name, render };
    vec![
        c("identity_line_item_id", Str(|r, x, o| o.with(|b| write_line_item_id(b, x.period, r.ordinal)))),
        c("identity_time_interval", Str(|r, x, o| o.with(|b| {
            b.extend_from_slice(x.period.hour_iso[r.start_hour as usize].as_bytes());
            b.push(b'/');
            b.extend_from_slice(x.period.hour_iso[(r.start_hour + r.hours) as usize].as_bytes());
        }))),
        c("line_item_usage_account_id", Str(|r, x, o| o.str(x.account(r).id))),
        c("line_item_line_item_type", Str(|r, _, o| o.str(r.kind.as_str()))),
        c("line_item_usage_start_date", Ts(|r, x| Some(x.period.hour_nanos(r.start_hour)))),
        c("line_item_usage_end_date", Ts(|r, x| Some(x.period.hour_nanos(r.start_hour + r.hours)))),
        c("line_item_product_code", Str(|r, x, o| o.str(x.item(r).product_code))),
        c("line_item_usage_type", Str(|r, x, o| o.str(&x.item(r).usage_type))),
        c("line_item_operation", Str(|r, x, o| o.str(x.item(r).operation))),
        c("line_item_unblended_cost", F64(|r, _| fixed_opt(r.cost))),
        c("line_item_unblended_rate", Str(|r, _, o| o.fixed(r.rate))),
        c("line_item_usage_amount", F64(|r, _| fixed_opt(r.amount))),
        c("bill_payer_account_id", Str(|r, x, o| o.str(x.payer(r).id))),
        c("bill_billing_period_start_date", Ts(|_, x| Some(x.period.start_nanos))),
        c("bill_billing_period_end_date", Ts(|_, x| Some(x.period.end_nanos))),
        c("line_item_resource_id", Str(render_resource_id)),
        c("product", StrMap(|r, x, m| m.entries(|m| {
            for (k, v) in &x.item(r).product {
                m.put(k, v);
            }
        }))),
        c("line_item_currency_code", Str(|_, _, o| o.str("USD"))),
        c("pricing_public_on_demand_cost", F64(|r, _| fixed_opt(r.public_cost))),
        c("pricing_public_on_demand_rate", Str(|r, _, o| o.fixed(r.public_rate))),
        c("line_item_line_item_description", Str(render_description)),
        c("line_item_net_unblended_cost", F64(|r, _| fixed_opt(r.net_cost))),
        c("line_item_net_unblended_rate", Str(|r, _, o| o.fixed(r.net_rate))),
        c("discount", F64Map(|r, _, m| match r.discount_kind {
            Some(kind) => m.entries(|m| m.put(kind.key(), fixed_f64(r.discount))),
            None => m.null(),
        })),
        c("discount_total_discount", F64(|r, _| fixed_opt(r.discount))),
        c("discount_bundled_discount", F64(|r, _| (r.discount_kind == Some(Discount::Bundled)).then(|| fixed_f64(r.discount)))),
        c("bill_invoice_id", Str(|r, x, o| o.str(&x.period.invoice_ids[x.account(r).payer]))),
        c("bill_billing_entity", Str(|r, x, o| o.str(x.item(r).billing_entity))),
        c("bill_bill_type", Str(|_, _, o| o.str("Anniversary"))),
        c("bill_invoicing_entity", Str(|_, _, o| o.str(AWS_EMEA))),
        c("bill_payer_account_name", Str(|r, x, o| o.str(x.payer(r).name))),
        c("line_item_usage_account_name", Str(|r, x, o| o.str(x.account(r).name))),
        c("line_item_legal_entity", Str(|r, x, o| o.str(x.item(r).legal_entity))),
        c("line_item_availability_zone", Str(|r, x, o| match x.region(r) {
            Some(region) if x.item(r).zonal && r.kind.is_usage() && r.resource != NO_RESOURCE => {
                o.with(|b| {
                    b.extend_from_slice(region.code.as_bytes());
                    b.push(b"abc"[r.resource as usize % 3]);
                });
            }
            _ => o.str(""),
        })),
        c("line_item_tax_type", Str(|r, _, o| o.opt((r.kind == Kind::Tax).then_some("VAT")))),
        c("line_item_blended_rate", Str(|r, _, o| o.fixed(r.rate))),
        c("line_item_blended_cost", F64(|r, _| fixed_opt(r.cost))),
        c("line_item_normalization_factor", F64(|r, x| normalization_factor(r, x).map(fixed_f64))),
        c("line_item_normalized_usage_amount", F64(|r, x| normalization_factor(r, x).map(|f| fixed_f64(fixed_mul(r.amount, f))))),
        c("resource_tags", StrMap(render_tags)),
        c("pricing_term", Str(|r, _, o| o.opt(match r.kind {
            Kind::Usage | Kind::SavingsPlanCoveredUsage => Some("OnDemand"),
            Kind::DiscountedUsage | Kind::RiFee => Some("Reserved"),
            _ => None,
        }))),
        c("pricing_unit", Str(|r, x, o| o.opt(if r.kind.is_usage() || r.kind.is_reservation() || r.kind.is_savings_plan() { x.item(r).unit } else { None }))),
        c("pricing_currency", Str(|r, _, o| o.opt((r.public_rate != NONE).then_some("USD")))),
        c("product_servicecode", Str(|r, x, o| o.str(x.item(r).product_code))),
        c("product_sku", Str(|r, x, o| o.opt(x.item(r).sku.as_deref()))),
        c("product_product_family", Str(|r, x, o| o.opt(x.item(r).family))),
        c("product_region_code", Str(|r, x, o| o.opt(x.region(r).map(|g| g.code)))),
        c("product_instance_type", Str(|r, x, o| o.opt(x.item(r).instance_type))),
        c("savings_plan_savings_plan_a_r_n", Str(|r, _, o| o.opt(r.kind.is_savings_plan().then_some(SP_ARN)))),
        c("savings_plan_savings_plan_rate", Str(|r, _, o| o.fixed(r.commitment_rate))),
        c("savings_plan_savings_plan_effective_cost", F64(|r, _| (r.kind == Kind::SavingsPlanCoveredUsage).then(|| fixed_f64(r.commitment_cost)))),
        c("savings_plan_used_commitment", F64(|r, _| (r.kind == Kind::SavingsPlanCoveredUsage).then(|| fixed_f64(r.commitment_cost)))),
        c("savings_plan_recurring_commitment_for_billing_period", F64(|r, _| (r.kind == Kind::SavingsPlanRecurringFee).then(|| fixed_f64(r.cost)))),
        c("savings_plan_start_time", Str(|r, x, o| o.opt(r.kind.is_savings_plan().then_some(x.period.sp_start.as_str())))),
        c("savings_plan_end_time", Str(|r, x, o| o.opt(r.kind.is_savings_plan().then_some(x.period.sp_end.as_str())))),
        c("cost_category", StrMap(|r, x, m| m.entries(|m| {
            if let Some(team) = x.account(r).team {
                m.put("team", team);
            }
        }))),
        c("reservation_reservation_a_r_n", Str(|r, _, o| o.opt(r.kind.is_reservation().then_some(RI_ARN)))),
        c("reservation_effective_cost", F64(|r, _| (r.kind == Kind::DiscountedUsage).then(|| fixed_f64(r.commitment_cost)))),
        c("reservation_amortized_upfront_cost_for_usage", F64(|r, _| fixed_opt(r.upfront))),
        c("reservation_start_time", Str(|r, x, o| o.opt(r.kind.is_reservation().then_some(x.period.ri_start.as_str())))),
        c("reservation_end_time", Str(|r, x, o| o.opt(r.kind.is_reservation().then_some(x.period.ri_end.as_str())))),
    ]
}

/// 52 lower-case base32 characters, like AWS's line item ids. The first 13 characters encode a
/// bijection of (seed, period, row), so ids are unique; the rest only add AWS's length.
fn write_line_item_id(out: &mut Vec<u8>, period: &PeriodInfo, ordinal: u64) {
    const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut word = mix(period.id_key ^ (period.code << 40 | ordinal));
    for part in 0..4_u64 {
        let mut bits = word;
        for _ in 0..13 {
            out.push(BASE32[(bits & 31) as usize]);
            bits >>= 5;
        }
        word = mix(word.wrapping_add(GOLDEN.wrapping_mul(part + 1)));
    }
}

fn render_description(r: &Row, x: &Ctx<'_>, o: &mut StrOut) {
    match r.kind {
        Kind::SavingsPlanNegation => o.with(|b| {
            let _ = write!(
                b,
                "SavingsPlanNegation used by AccountId : {} and UsageSku : {}",
                ACCOUNTS[SP_OWNER as usize].id,
                x.item(r).sku.as_deref().unwrap_or("")
            );
        }),
        Kind::DiscountedUsage => {
            o.str("USD 0.0 hourly fee per Linux/UNIX (Amazon VPC), m5.xlarge instance")
        }
        Kind::EdpDiscount => o.str("Enterprise Program Discount"),
        Kind::PrivateRateDiscount => o.str("Private rate discount"),
        Kind::SppDiscount => o.str("Solution Provider Program Discount"),
        Kind::BundledDiscount => o.str("Free data transfer out bundled with usage"),
        Kind::Credit => o.str("AWS Promotional Credit"),
        Kind::Refund => o.str("Refund for service level agreement credit"),
        _ => o.str(&x.item(r).description),
    }
}

fn normalization_factor(r: &Row, x: &Ctx<'_>) -> Option<i64> {
    let factor = x.item(r).normalization_factor;
    (factor != NONE && r.kind.is_usage()).then_some(factor)
}

fn render_resource_id(r: &Row, x: &Ctx<'_>, o: &mut StrOut) {
    let item = x.item(r);
    if r.resource == NO_RESOURCE {
        // Usage lines always have the column, empty when AWS meters no resource; account-level
        // lines (taxes, credits, fees) have none.
        return if r.kind.is_usage() {
            o.str("")
        } else {
            o.null()
        };
    }
    let account = x.account(r);
    let region = x.region(r).map_or("", |g| g.code);
    let index = r.resource;
    let word = RESOURCE_WORDS[index as usize % RESOURCE_WORDS.len()];
    // Stable per (account, SKU, index): the same resources recur hour after hour.
    let hex = mix((u64::from(r.account) << 40)
        ^ ((item.sku_index.unwrap_or(999) as u64) << 20)
        ^ u64::from(index))
        >> 4;
    o.with(|b| {
        if let Some(service) = arn_service(item.resource) {
            let _ = write!(b, "arn:aws:{service}:{region}:{}:", account.id);
        }
        let _ = match item.resource {
            Resource::Instance => write!(b, "i-0{hex:015x}"),
            Resource::Volume => write!(b, "vol-0{hex:015x}"),
            Resource::Bucket => write!(b, "{}-{word}-{index}", account.name),
            Resource::Function => write!(b, "function:{word}-{index}"),
            Resource::Database => write!(b, "db:{word}-db-{index}"),
            Resource::Table => write!(b, "table/{word}-{index}"),
            Resource::NatGateway => write!(b, "natgateway/nat-0{hex:015x}"),
            Resource::LogGroup => write!(b, "log-group:/aws/lambda/{word}-{index}"),
            Resource::Address => write!(b, "elastic-ip/eipalloc-0{hex:015x}"),
            Resource::Reservation => write!(b, "{RI_ARN}"),
            Resource::SavingsPlan => write!(b, "{SP_ARN}"),
            Resource::None => Ok(()),
        };
    });
}

/// The service in the ARN of a resource named `arn:aws:<service>:<region>:<account>:<resource>`;
/// `None` for resources named otherwise (instances, volumes, buckets, commitments).
fn arn_service(resource: Resource) -> Option<&'static str> {
    match resource {
        Resource::Function => Some("lambda"),
        Resource::Database => Some("rds"),
        Resource::Table => Some("dynamodb"),
        Resource::NatGateway | Resource::Address => Some("ec2"),
        Resource::LogGroup => Some("logs"),
        _ => None,
    }
}

const RESOURCE_WORDS: [&str; 8] = [
    "orders",
    "billing",
    "search",
    "ingest",
    "analytics",
    "web",
    "auth",
    "reports",
];
const ENVIRONMENTS: [&str; 3] = ["prod", "staging", "dev"];

/// User tags of the line's resource: most resources are tagged, some are not (an empty map), and
/// lines without a resource have no tags at all (null).
fn render_tags(r: &Row, x: &Ctx<'_>, m: &mut MapOut<StrBuf>) {
    if !r.kind.is_usage() {
        return m.null();
    }
    let index = r.resource as usize;
    m.entries(|m| {
        if r.resource == NO_RESOURCE || index % 7 == 6 {
            return;
        }
        if let Some(team) = x.account(r).team {
            m.put("user_team", team);
        }
        m.put("user_env", ENVIRONMENTS[index % ENVIRONMENTS.len()]);
        if index.is_multiple_of(2) {
            m.put("user_service", RESOURCE_WORDS[index % RESOURCE_WORDS.len()]);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::AsArray;
    use arrow::datatypes::{DataType as ArrowType, TimeUnit, TimestampNanosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Type as PhysicalType;

    use crate::testing::{generate, object, options, strings};

    #[tokio::test]
    async fn physical_format_matches_aws() {
        let (store, summary) = generate(&options(2_000, 42)).await;
        let data = object(&store, &summary.files[0]).await;
        let builder = ParquetRecordBatchReaderBuilder::try_new(data).unwrap();

        let parquet = builder.metadata().file_metadata().schema_descr();
        let physical: BTreeMap<String, PhysicalType> = parquet
            .columns()
            .iter()
            .map(|c| (c.path().string(), c.physical_type()))
            .collect();
        for ts in [
            "bill_billing_period_start_date",
            "bill_billing_period_end_date",
            "line_item_usage_start_date",
            "line_item_usage_end_date",
        ] {
            assert_eq!(physical[ts], PhysicalType::INT96, "{ts}");
        }

        let arrow = builder.schema();
        let ty = |name: &str| arrow.field_with_name(name).unwrap().data_type().clone();
        assert_eq!(
            ty("line_item_usage_start_date"),
            ArrowType::Timestamp(TimeUnit::Nanosecond, None)
        );
        for rate in [
            "line_item_unblended_rate",
            "line_item_blended_rate",
            "line_item_net_unblended_rate",
            "pricing_public_on_demand_rate",
            "savings_plan_savings_plan_rate",
        ] {
            assert_eq!(ty(rate), ArrowType::Utf8, "{rate}");
        }
        for cost in [
            "line_item_unblended_cost",
            "pricing_public_on_demand_cost",
            "savings_plan_savings_plan_effective_cost",
            "reservation_effective_cost",
            "line_item_usage_amount",
        ] {
            assert_eq!(ty(cost), ArrowType::Float64, "{cost}");
        }
        for map in ["product", "resource_tags", "cost_category", "discount"] {
            let ArrowType::Map(entries, _) = ty(map) else {
                panic!("{map} is {:?}", ty(map))
            };
            let ArrowType::Struct(fields) = entries.data_type() else {
                panic!("{map} entries")
            };
            let value = if map == "discount" {
                ArrowType::Float64
            } else {
                ArrowType::Utf8
            };
            assert_eq!(
                (fields[0].data_type(), fields[1].data_type()),
                (&ArrowType::Utf8, &value),
                "{map}"
            );
        }
        assert!(arrow.fields().iter().all(|f| f.is_nullable()));
        let names: Vec<&str> = arrow.fields().iter().map(|f| f.name().as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_ne!(names, sorted, "columns must not be in alphabetical order");
        assert_eq!(names.len(), 61);

        let batch = builder.build().unwrap().next().unwrap().unwrap();
        let rate = strings(&batch, "line_item_unblended_rate");
        assert!(
            rate.iter()
                .flatten()
                .all(|r| r.split_once('.').is_some_and(|(_, f)| f.len() == 10))
        );
        let start = batch
            .column_by_name("bill_billing_period_start_date")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>()
            .value(0);
        assert_eq!(start, 1_761_955_200_000_000_000); // 2025-11-01T00:00:00Z
    }
}
