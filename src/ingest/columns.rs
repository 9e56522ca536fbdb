//! The canonical CUR 2.0 column catalog: every column `rerate` reads, its kind and output type.
//!
//! Input files may hold any subset of these columns in any order; reading is by name, and a
//! column absent from a file is null. Output tables always carry the whole catalog, so their
//! schema is stable across runs and exports (Delta tables, customers' CUR tools).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::money::money_type;

/// How a column is read and what type it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, `Utf8`; empty strings (legacy blanks) become null.
    Text,
    /// Money (doubles in CUR): `Decimal128(38, 10)`.
    Money,
    /// Unit prices (strings like `"0.0100000000"` in CUR): `Decimal128(38, 10)`.
    Rate,
    /// Usage quantities and ratios: `Float64` (not money).
    Quantity,
    /// Instants: UTC microseconds.
    Timestamp,
    /// `map<string,string>` (product, resource_tags, cost_category).
    TextMap,
    /// `map<string,money>` (discount).
    MoneyMap,
}

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The map layout Parquet writers and readers agree on (`key_value`, `key`, `value`).
pub fn map_type(value: DataType) -> DataType {
    let entries = Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", value, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::Money | Kind::Rate => money_type(),
            Kind::Quantity => DataType::Float64,
            Kind::Timestamp => timestamp_type(),
            Kind::TextMap => map_type(DataType::Utf8),
            Kind::MoneyMap => map_type(money_type()),
        }
    }
}

use Kind::*;

/// Every CUR 2.0 column, in the order AWS documents them.
pub const CUR2_COLUMNS: &[(&str, Kind)] = &[
    ("bill_bill_type", Text),
    ("bill_billing_entity", Text),
    ("bill_billing_period_end_date", Timestamp),
    ("bill_billing_period_start_date", Timestamp),
    ("bill_invoice_id", Text),
    ("bill_invoicing_entity", Text),
    ("bill_payer_account_id", Text),
    ("bill_payer_account_name", Text),
    ("cost_category", TextMap),
    ("discount", MoneyMap),
    ("discount_bundled_discount", Money),
    ("discount_total_discount", Money),
    ("identity_line_item_id", Text),
    ("identity_time_interval", Text),
    ("line_item_availability_zone", Text),
    ("line_item_blended_cost", Money),
    ("line_item_blended_rate", Rate),
    ("line_item_currency_code", Text),
    ("line_item_legal_entity", Text),
    ("line_item_line_item_description", Text),
    ("line_item_line_item_type", Text),
    ("line_item_net_unblended_cost", Money),
    ("line_item_net_unblended_rate", Rate),
    ("line_item_normalization_factor", Quantity),
    ("line_item_normalized_usage_amount", Quantity),
    ("line_item_operation", Text),
    ("line_item_product_code", Text),
    ("line_item_resource_id", Text),
    ("line_item_tax_type", Text),
    ("line_item_unblended_cost", Money),
    ("line_item_unblended_rate", Rate),
    ("line_item_usage_account_id", Text),
    ("line_item_usage_account_name", Text),
    ("line_item_usage_amount", Quantity),
    ("line_item_usage_end_date", Timestamp),
    ("line_item_usage_start_date", Timestamp),
    ("line_item_usage_type", Text),
    ("pricing_currency", Text),
    ("pricing_lease_contract_length", Text),
    ("pricing_offering_class", Text),
    ("pricing_public_on_demand_cost", Money),
    ("pricing_public_on_demand_rate", Rate),
    ("pricing_purchase_option", Text),
    ("pricing_rate_code", Text),
    ("pricing_rate_id", Text),
    ("pricing_term", Text),
    ("pricing_unit", Text),
    ("product", TextMap),
    ("product_comment", Text),
    ("product_fee_code", Text),
    ("product_fee_description", Text),
    ("product_from_location", Text),
    ("product_from_location_type", Text),
    ("product_from_region_code", Text),
    ("product_instance_family", Text),
    ("product_instance_type", Text),
    ("product_instancesku", Text),
    ("product_location", Text),
    ("product_location_type", Text),
    ("product_operation", Text),
    ("product_pricing_unit", Text),
    ("product_product_family", Text),
    ("product_region_code", Text),
    ("product_servicecode", Text),
    ("product_sku", Text),
    ("product_to_location", Text),
    ("product_to_location_type", Text),
    ("product_to_region_code", Text),
    ("product_usagetype", Text),
    ("reservation_amortized_upfront_cost_for_usage", Money),
    (
        "reservation_amortized_upfront_fee_for_billing_period",
        Money,
    ),
    ("reservation_availability_zone", Text),
    ("reservation_effective_cost", Money),
    ("reservation_end_time", Text),
    ("reservation_modification_status", Text),
    ("reservation_net_amortized_upfront_cost_for_usage", Money),
    (
        "reservation_net_amortized_upfront_fee_for_billing_period",
        Money,
    ),
    ("reservation_net_effective_cost", Money),
    ("reservation_net_recurring_fee_for_usage", Money),
    (
        "reservation_net_unused_amortized_upfront_fee_for_billing_period",
        Money,
    ),
    ("reservation_net_unused_recurring_fee", Money),
    ("reservation_net_upfront_value", Money),
    ("reservation_normalized_units_per_reservation", Text),
    ("reservation_number_of_reservations", Text),
    ("reservation_recurring_fee_for_usage", Money),
    ("reservation_reservation_a_r_n", Text),
    ("reservation_start_time", Text),
    ("reservation_subscription_id", Text),
    ("reservation_total_reserved_normalized_units", Text),
    ("reservation_total_reserved_units", Text),
    ("reservation_units_per_reservation", Text),
    (
        "reservation_unused_amortized_upfront_fee_for_billing_period",
        Money,
    ),
    ("reservation_unused_normalized_unit_quantity", Quantity),
    ("reservation_unused_quantity", Quantity),
    ("reservation_unused_recurring_fee", Money),
    ("reservation_upfront_value", Money),
    ("resource_tags", TextMap),
    (
        "savings_plan_amortized_upfront_commitment_for_billing_period",
        Money,
    ),
    ("savings_plan_end_time", Text),
    ("savings_plan_instance_type_family", Text),
    (
        "savings_plan_net_amortized_upfront_commitment_for_billing_period",
        Money,
    ),
    (
        "savings_plan_net_recurring_commitment_for_billing_period",
        Money,
    ),
    ("savings_plan_net_savings_plan_effective_cost", Money),
    ("savings_plan_offering_type", Text),
    ("savings_plan_payment_option", Text),
    ("savings_plan_purchase_term", Text),
    (
        "savings_plan_recurring_commitment_for_billing_period",
        Money,
    ),
    ("savings_plan_region", Text),
    ("savings_plan_savings_plan_a_r_n", Text),
    ("savings_plan_savings_plan_effective_cost", Money),
    ("savings_plan_savings_plan_rate", Rate),
    ("savings_plan_start_time", Text),
    ("savings_plan_total_commitment_to_date", Money),
    ("savings_plan_used_commitment", Money),
    ("split_line_item_actual_usage", Quantity),
    ("split_line_item_net_split_cost", Money),
    ("split_line_item_net_unused_cost", Money),
    ("split_line_item_parent_resource_id", Text),
    ("split_line_item_public_on_demand_split_cost", Money),
    ("split_line_item_public_on_demand_unused_cost", Money),
    ("split_line_item_reserved_usage", Quantity),
    ("split_line_item_split_cost", Money),
    ("split_line_item_split_usage", Quantity),
    ("split_line_item_split_usage_ratio", Quantity),
    ("split_line_item_unused_cost", Money),
];

/// Columns every input file must have (README, Required columns).
pub const REQUIRED: &[&str] = &[
    "identity_line_item_id",
    "line_item_usage_account_id",
    "bill_payer_account_id",
    "bill_billing_period_start_date",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_operation",
    "line_item_usage_amount",
    "line_item_unblended_cost",
    "line_item_currency_code",
];

/// Legacy CUR flattens these maps into `<prefix><key>` columns.
pub const FLATTENED_MAPS: &[(&str, &str)] = &[
    ("product", "product_"),
    ("resource_tags", "resource_tags_"),
    ("cost_category", "cost_category_"),
];

/// Names of rerate's own columns (partitions, assignment, pricing): an input column by one of
/// these names would be ambiguous in every table, so it is refused. A test keeps the list equal
/// to what `sql/assign.sql` and `sql/rate.sql` add.
pub const RESERVED: &[&str] = &[
    "billing_period",
    "folder_period",
    "billing_group",
    "assigned_by",
    "commitment_owner",
    "charge_class",
    "pricing_plan",
    "commitment_owner_group",
    "treatment",
    "credit_exception",
    "matched_rule",
    "rules_beaten",
    "factor",
    "fixed_rate",
    "base_cost",
    "base_rate",
    "pricing_rule",
    "proforma_line_item_type",
    "proforma_line_item_description",
    "rerated_commitment",
    "proforma_cost",
    "proforma_rate",
];

/// Whether an input column beyond the catalog is emptied in pro forma and exports (SPEC §6.3):
/// amounts, rates and prices, discounts, and anything of a commitment. Decided by name, so that
/// a column AWS adds later is hidden unless it is plainly neither.
pub fn hidden_in_proforma(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "reservation_",
        "savings_plan_",
        "discount",
        "capacity_reservation_",
        "split_line_item_",
        "pricing_",
        "bill_invoice",
    ];
    const WORDS: &[&str] = &[
        "cost",
        "rate",
        "price",
        "amortized",
        "discount",
        "savings",
        "commitment",
        "credit",
        "refund",
        "fee",
        "tax",
        "blended",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || name.split('_').any(|w| WORDS.contains(&w))
}

/// The columns of a table that came from the input beyond the catalog: neither a catalog
/// column nor one of rerate's own.
pub fn extras(schema: &Schema) -> impl Iterator<Item = &Field> {
    schema
        .fields()
        .iter()
        .map(|f| f.as_ref())
        .filter(|f| kind_of(f.name()).is_none() && !RESERVED.contains(&f.name().as_str()))
}

pub fn kind_of(name: &str) -> Option<Kind> {
    CUR2_COLUMNS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
}

/// The normalized CUR 2.0 schema every input is turned into, plus `billing_period`.
pub fn cur_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields: Vec<Field> = CUR2_COLUMNS
            .iter()
            .map(|(n, k)| Field::new(*n, k.data_type(), true))
            .collect();
        fields.push(Field::new("billing_period", DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_no_duplicates_and_holds_every_required_column() {
        let mut names: Vec<_> = CUR2_COLUMNS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CUR2_COLUMNS.len());
        for r in REQUIRED {
            assert!(kind_of(r).is_some(), "{r} missing from the catalog");
        }
    }

    #[test]
    fn pro_forma_hides_amounts_rates_and_commitments_of_columns_beyond_the_catalog() {
        for hidden in [
            "capacity_reservation_capacity_reservation_arn",
            "split_line_item_split_cost",
            "line_item_net_amortized_cost",
            "reservation_new_thing",
            "savings_plan_x",
            "pricing_new_rate_field",
            "line_item_tax_amount",
            "some_future_unit_price",
        ] {
            assert!(hidden_in_proforma(hidden), "{hidden}");
        }
        for shown in [
            "line_item_iam_principal",
            "line_item_user_identifier",
            "product_new_attribute",
            "line_item_resource_id",
            "corporate_team",
        ] {
            assert!(!hidden_in_proforma(shown), "{shown}");
        }
    }

    #[test]
    fn money_and_rates_are_decimal_never_float() {
        for (name, kind) in CUR2_COLUMNS {
            if name.ends_with("_cost") || name.ends_with("_rate") {
                assert_eq!(kind.data_type(), money_type(), "{name}");
            }
        }
    }
}
