//! The bill: organizations, accounts, regions, services, SKUs and commitments, and the catalog
//! of every line a row can be about, built once per run.

use crate::fixed::{NONE, fixed, price_text, round_div};
use crate::rng::{GOLDEN, Weighted, mix};

pub(crate) struct Payer {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    /// Enterprise Discount Program percentage; 0 = none.
    pub(crate) edp_percent: i64,
    /// Private pricing on S3 (PrivateRateDiscount lines); 0 = none.
    pub(crate) s3_private_percent: i64,
    /// Solution Provider Program discount (SppDiscount lines); 0 = none.
    pub(crate) spp_percent: i64,
}

#[rustfmt::skip]
pub(crate) const PAYERS: [Payer; 3] = [
    Payer { id: "111111111111", name: "ACME Corp", edp_percent: 6, s3_private_percent: 0, spp_percent: 0 },
    Payer { id: "444444444444", name: "Globex Corporation", edp_percent: 4, s3_private_percent: 12, spp_percent: 0 },
    Payer { id: "777777777777", name: "Initech Holdings", edp_percent: 0, s3_private_percent: 0, spp_percent: 3 },
];

pub(crate) struct Account {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) payer: usize,
    /// The `team` cost category; `None` leaves the map empty.
    pub(crate) team: Option<&'static str>,
    /// Share of the bill's usage lines.
    weight: u32,
    /// Where the account runs: (index into [`REGIONS`], weight).
    pub(crate) regions: &'static [(usize, u32)],
}

const USE1: usize = 0;
const USW2: usize = 1;
const EUW1: usize = 2;
const EUC1: usize = 3;

#[rustfmt::skip]
pub(crate) const ACCOUNTS: [Account; 7] = [
    Account { id: "111111111111", name: "acme-management", payer: 0, team: Some("platform"), weight: 12, regions: &[(USE1, 3), (USW2, 1)] },
    Account { id: "222222222222", name: "acme-production", payer: 0, team: Some("commerce"), weight: 24, regions: &[(USW2, 3), (USE1, 1)] },
    Account { id: "333333333333", name: "acme-research", payer: 0, team: Some("research"), weight: 12, regions: &[(USE1, 1), (EUW1, 1)] },
    Account { id: "444444444444", name: "globex-management", payer: 1, team: Some("finance"), weight: 8, regions: &[(EUW1, 1)] },
    Account { id: "555555555555", name: "globex-production", payer: 1, team: Some("logistics"), weight: 20, regions: &[(USE1, 2), (EUW1, 1)] },
    Account { id: "666666666666", name: "initech-production", payer: 2, team: Some("tps-reports"), weight: 14, regions: &[(EUC1, 2), (USE1, 1)] },
    Account { id: "888888888888", name: "initech-sandbox", payer: 2, team: None, weight: 10, regions: &[(USE1, 1)] },
];

pub(crate) const ACME_MANAGEMENT: u8 = 0;
pub(crate) const ACME_PRODUCTION: u8 = 1;
pub(crate) const GLOBEX_MANAGEMENT: u8 = 3;
pub(crate) const GLOBEX_PRODUCTION: u8 = 4;
pub(crate) const INITECH_PRODUCTION: u8 = 5;

pub(crate) struct Region {
    pub(crate) code: &'static str,
    /// Usage type prefix.
    prefix: &'static str,
    location: &'static str,
    /// Price relative to us-east-1, per mille.
    price_per_mille: i64,
}

#[rustfmt::skip]
pub(crate) const REGIONS: [Region; 4] = [
    Region { code: "us-east-1", prefix: "USE1", location: "US East (N. Virginia)", price_per_mille: 1000 },
    Region { code: "us-west-2", prefix: "USW2", location: "US West (Oregon)", price_per_mille: 1000 },
    Region { code: "eu-west-1", prefix: "EU", location: "EU (Ireland)", price_per_mille: 1115 },
    Region { code: "eu-central-1", prefix: "EUC1", location: "EU (Frankfurt)", price_per_mille: 1200 },
];

const AWS: &str = "AWS";
pub(crate) const AWS_EMEA: &str = "Amazon Web Services EMEA SARL";

pub(crate) struct Service {
    pub(crate) code: &'static str,
    name: &'static str,
}

impl Service {
    const fn new(code: &'static str, name: &'static str) -> Self {
        Self { code, name }
    }
}

pub(crate) const EC2: Service = Service::new("AmazonEC2", "Amazon Elastic Compute Cloud");
pub(crate) const S3: Service = Service::new("AmazonS3", "Amazon Simple Storage Service");
const CLOUDWATCH: Service = Service::new("AmazonCloudWatch", "AmazonCloudWatch");
const LAMBDA: Service = Service::new("AWSLambda", "AWS Lambda");
const RDS: Service = Service::new("AmazonRDS", "Amazon Relational Database Service");
const DYNAMODB: Service = Service::new("AmazonDynamoDB", "Amazon DynamoDB");
const DATA_TRANSFER: Service = Service::new("AWSDataTransfer", "AWS Data Transfer");
const VPC: Service = Service::new("AmazonVPC", "Amazon Virtual Private Cloud");

/// How much of a SKU one hourly line item meters.
#[derive(Clone, Copy)]
pub(crate) enum Amount {
    /// Instance hours: mostly a full hour, sometimes a partial one billed per second.
    Hours,
    /// A monthly quantity (GB-month, metric-month) prorated to the hour, as AWS meters storage.
    PerMonth { min: i64, max: i64 },
    /// A metered quantity with 10 decimals (GB, GB-seconds), up to `max`.
    Metered { max: i64 },
    /// Whole units (requests), up to `max`.
    Count { max: i64 },
    /// Exactly one unit (fees, taxes, credits).
    One,
}

/// What `line_item_resource_id` names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    None,
    Instance,
    Volume,
    Bucket,
    Function,
    Database,
    Table,
    NatGateway,
    LogGroup,
    Address,
    Reservation,
    SavingsPlan,
}

impl Resource {
    /// How many distinct resources of this kind an account has per SKU.
    pub(crate) fn pool(self) -> u64 {
        match self {
            Resource::None => 0,
            Resource::Instance => 24,
            Resource::Volume => 32,
            Resource::Bucket => 6,
            Resource::Function => 12,
            Resource::Database => 3,
            Resource::Table => 5,
            Resource::NatGateway => 2,
            Resource::LogGroup => 8,
            Resource::Address => 6,
            Resource::Reservation | Resource::SavingsPlan => 1,
        }
    }
}

/// A usage SKU, priced for us-east-1 and instantiated in every region.
pub(crate) struct Sku {
    pub(crate) service: Service,
    family: &'static str,
    /// Usage type after the region prefix.
    pub(crate) usage: &'static str,
    operation: &'static str,
    unit: &'static str,
    /// us-east-1 public on-demand rate.
    rate: &'static str,
    /// `{price}` and `{location}` are filled in per region.
    describe: &'static str,
    /// Instance type and its normalization factor.
    pub(crate) instance: Option<(&'static str, &'static str)>,
    amount: Amount,
    resource: Resource,
    zonal: bool,
    weight: u32,
}

#[rustfmt::skip]
pub(crate) const SKUS: &[Sku] = &[
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:t3.micro", operation: "RunInstances", unit: "Hrs", rate: "0.0104", describe: "{price} per On Demand Linux t3.micro Instance Hour", instance: Some(("t3.micro", "0.5")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 10 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:t3.medium", operation: "RunInstances", unit: "Hrs", rate: "0.0416", describe: "{price} per On Demand Linux t3.medium Instance Hour", instance: Some(("t3.medium", "2")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 8 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:m5.large", operation: "RunInstances", unit: "Hrs", rate: "0.096", describe: "{price} per On Demand Linux m5.large Instance Hour", instance: Some(("m5.large", "4")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 14 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:m5.xlarge", operation: "RunInstances", unit: "Hrs", rate: "0.192", describe: "{price} per On Demand Linux m5.xlarge Instance Hour", instance: Some(("m5.xlarge", "8")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 8 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:c5.2xlarge", operation: "RunInstances", unit: "Hrs", rate: "0.34", describe: "{price} per On Demand Linux c5.2xlarge Instance Hour", instance: Some(("c5.2xlarge", "16")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 4 },
    Sku { service: EC2, family: "Compute Instance", usage: "BoxUsage:r6g.large", operation: "RunInstances", unit: "Hrs", rate: "0.1008", describe: "{price} per On Demand Linux r6g.large Instance Hour", instance: Some(("r6g.large", "4")), amount: Amount::Hours, resource: Resource::Instance, zonal: true, weight: 3 },
    Sku { service: EC2, family: "Storage", usage: "EBS:VolumeUsage.gp3", operation: "CreateVolume-Gp3", unit: "GB-Mo", rate: "0.08", describe: "{price} per GB-month of General Purpose (gp3) provisioned storage - {location}", instance: None, amount: Amount::PerMonth { min: 8, max: 2000 }, resource: Resource::Volume, zonal: true, weight: 10 },
    Sku { service: DATA_TRANSFER, family: "Data Transfer", usage: "DataTransfer-Out-Bytes", operation: "RunInstances", unit: "GB", rate: "0.09", describe: "{price} per GB - first 10 TB / month data transfer out beyond the global free tier", instance: None, amount: Amount::Metered { max: 4 }, resource: Resource::Instance, zonal: false, weight: 6 },
    Sku { service: DATA_TRANSFER, family: "Data Transfer", usage: "DataTransfer-Regional-Bytes", operation: "InterZone-In", unit: "GB", rate: "0.01", describe: "{price} per GB - regional data transfer - in/out/between EC2 AZs or using elastic IPs or ELB", instance: None, amount: Amount::Metered { max: 20 }, resource: Resource::Instance, zonal: false, weight: 4 },
    Sku { service: S3, family: "Storage", usage: "TimedStorage-ByteHrs", operation: "StandardStorage", unit: "GB-Mo", rate: "0.023", describe: "{price} per GB - first 50 TB / month of storage used", instance: None, amount: Amount::PerMonth { min: 1, max: 12_000 }, resource: Resource::Bucket, zonal: false, weight: 8 },
    Sku { service: S3, family: "API Request", usage: "Requests-Tier1", operation: "PutObject", unit: "Requests", rate: "0.000005", describe: "{price} per 1,000 PUT, COPY, POST, or LIST requests", instance: None, amount: Amount::Count { max: 100_000 }, resource: Resource::Bucket, zonal: false, weight: 4 },
    Sku { service: S3, family: "API Request", usage: "Requests-Tier2", operation: "GetObject", unit: "Requests", rate: "0.0000004", describe: "{price} per 10,000 GET and all other requests", instance: None, amount: Amount::Count { max: 500_000 }, resource: Resource::Bucket, zonal: false, weight: 4 },
    Sku { service: CLOUDWATCH, family: "Metric", usage: "CW:MetricMonitorUsage", operation: "MetricStorage", unit: "Metrics", rate: "0.30", describe: "{price} per metric-month - first 10,000 metrics - {location}", instance: None, amount: Amount::PerMonth { min: 10, max: 400 }, resource: Resource::None, zonal: false, weight: 3 },
    Sku { service: CLOUDWATCH, family: "Data Payload", usage: "DataProcessing-Bytes", operation: "PutLogEvents", unit: "GB", rate: "0.50", describe: "{price} per GB custom log data ingested - {location}", instance: None, amount: Amount::Metered { max: 1 }, resource: Resource::LogGroup, zonal: false, weight: 3 },
    Sku { service: LAMBDA, family: "Serverless", usage: "Lambda-GB-Second", operation: "Invoke", unit: "Lambda-GB-Second", rate: "0.0000166667", describe: "AWS Lambda - Total Compute - {location}", instance: None, amount: Amount::Metered { max: 20_000 }, resource: Resource::Function, zonal: false, weight: 5 },
    Sku { service: LAMBDA, family: "Serverless", usage: "Request", operation: "Invoke", unit: "Requests", rate: "0.0000002", describe: "AWS Lambda - Total Requests - {location}", instance: None, amount: Amount::Count { max: 400_000 }, resource: Resource::Function, zonal: false, weight: 4 },
    Sku { service: RDS, family: "Database Instance", usage: "InstanceUsage:db.m5.large", operation: "CreateDBInstance:0002", unit: "Hrs", rate: "0.171", describe: "{price} per RDS db.m5.large Single-AZ instance hour (or partial hour) running MySQL", instance: Some(("db.m5.large", "4")), amount: Amount::Hours, resource: Resource::Database, zonal: true, weight: 4 },
    Sku { service: RDS, family: "Database Storage", usage: "RDS:GP2-Storage", operation: "CreateDBInstance:0002", unit: "GB-Mo", rate: "0.115", describe: "{price} per GB-month of provisioned GP2 storage running MySQL", instance: None, amount: Amount::PerMonth { min: 20, max: 4_000 }, resource: Resource::Database, zonal: true, weight: 2 },
    Sku { service: DYNAMODB, family: "Amazon DynamoDB PayPerRequest Throughput", usage: "ReadRequestUnits", operation: "PayPerRequestThroughput", unit: "ReadRequestUnits", rate: "0.000000125", describe: "{price} per ReadRequestUnits - {location}", instance: None, amount: Amount::Count { max: 800_000 }, resource: Resource::Table, zonal: false, weight: 3 },
    Sku { service: DYNAMODB, family: "Amazon DynamoDB PayPerRequest Throughput", usage: "WriteRequestUnits", operation: "PayPerRequestThroughput", unit: "WriteRequestUnits", rate: "0.000000625", describe: "{price} per WriteRequestUnits - {location}", instance: None, amount: Amount::Count { max: 300_000 }, resource: Resource::Table, zonal: false, weight: 2 },
    Sku { service: DYNAMODB, family: "Database Storage", usage: "TimedStorage-ByteHrs", operation: "StandardStorage", unit: "GB-Mo", rate: "0.25", describe: "{price} per GB-Month of storage used beyond first 25 free GB-Months", instance: None, amount: Amount::PerMonth { min: 1, max: 800 }, resource: Resource::Table, zonal: false, weight: 1 },
    Sku { service: VPC, family: "NAT Gateway", usage: "NatGateway-Hours", operation: "NatGateway", unit: "Hrs", rate: "0.045", describe: "{price} per NAT Gateway Hour", instance: None, amount: Amount::Hours, resource: Resource::NatGateway, zonal: false, weight: 3 },
    Sku { service: VPC, family: "VPC", usage: "PublicIPv4:InUseAddress", operation: "AssociateAddressVPC", unit: "Hrs", rate: "0.005", describe: "{price} per In-use public IPv4 address per hour", instance: None, amount: Amount::Hours, resource: Resource::Address, zonal: false, weight: 3 },
];

/// The Compute Savings Plan owned by acme-production.
pub(crate) const SP_ARN: &str =
    "arn:aws:savingsplans::222222222222:savingsplan/3f1c2a9e-7b4d-4c61-9a8e-5d2f0b6e1c47";
pub(crate) const SP_OWNER: u8 = ACME_PRODUCTION;
/// Savings Plan rate as a share of the on-demand rate, percent (3-year no upfront, roughly).
pub(crate) const SP_RATE_PERCENT: i64 = 66;
/// The Reserved Instances (m5.xlarge, us-east-1, 1-year partial upfront) owned by
/// globex-management and used by globex-production.
pub(crate) const RI_ARN: &str =
    "arn:aws:ec2:us-east-1:444444444444:reserved-instances/9d2e4b1a-3c5f-4e7a-8b6d-2f1a0c9e7d35";
pub(crate) const RI_OWNER: u8 = GLOBEX_MANAGEMENT;
pub(crate) const RI_USER: u8 = GLOBEX_PRODUCTION;
/// Hourly recurring fee per reservation.
pub(crate) const RI_RECURRING: &str = "0.0605";
/// Upfront payment (530 USD per year) amortized per hour: 530 / 8760, to 10 decimals.
pub(crate) const RI_AMORTIZED: &str = "0.0605022831";

/// Commitments are sized to the usage they cover, so the sample looks like a well-run bill at
/// any row count: per generated row, the Savings Plan commitment (USD per period; the lines
/// generated cover ≈ 0.00464 USD of effective cost per row) and the reserved hours (≈ 0.0375
/// covered hours per row). Measured on 1M rows; `commitments_are_sized_to_their_usage` checks.
pub(crate) const SP_COMMITMENT_PER_ROW: f64 = 0.0048;
pub(crate) const RI_HOURS_PER_ROW: f64 = 0.038;

/// One line a row can be about: a SKU in a region, a fee, or a service as a whole (taxes,
/// credits). Strings are built once per run, so rows only hold indices.
pub(crate) struct Item {
    pub(crate) product_code: &'static str,
    pub(crate) billing_entity: &'static str,
    pub(crate) legal_entity: &'static str,
    pub(crate) usage_type: String,
    pub(crate) operation: &'static str,
    pub(crate) unit: Option<&'static str>,
    pub(crate) family: Option<&'static str>,
    pub(crate) description: String,
    pub(crate) instance_type: Option<&'static str>,
    pub(crate) normalization_factor: i64,
    pub(crate) region: Option<usize>,
    pub(crate) sku: Option<String>,
    /// Index into [`SKUS`] for usage items; keys resource names.
    pub(crate) sku_index: Option<usize>,
    pub(crate) rate: i64,
    pub(crate) amount: Amount,
    pub(crate) resource: Resource,
    pub(crate) zonal: bool,
    pub(crate) product: Vec<(&'static str, String)>,
}

impl Item {
    fn usage(sku_index: usize, sku: &Sku, region: &Region) -> Self {
        let rate = round_div(
            fixed(sku.rate) as i128 * region.price_per_mille as i128,
            1000,
        );
        let usage_type = format!("{}-{}", region.prefix, sku.usage);
        let description = sku
            .describe
            .replace("{price}", &price_text(rate))
            .replace("{location}", region.location);
        let mut product = vec![
            ("product_name", sku.service.name.to_string()),
            ("servicename", sku.service.name.to_string()),
            ("region", region.code.to_string()),
            ("location", region.location.to_string()),
            ("usagetype", usage_type.clone()),
            ("operation", sku.operation.to_string()),
        ];
        if sku.instance.is_some() {
            product.push(("operating_system", "Linux".to_string()));
            product.push(("tenancy", "Shared".to_string()));
        }
        Self {
            product_code: sku.service.code,
            billing_entity: AWS,
            legal_entity: AWS_EMEA,
            sku: Some(sku_code(&usage_type, sku.operation)),
            usage_type,
            operation: sku.operation,
            unit: Some(sku.unit),
            family: Some(sku.family),
            description,
            instance_type: sku.instance.map(|(t, _)| t),
            normalization_factor: sku.instance.map_or(NONE, |(_, f)| fixed(f)),
            region: Some(
                REGIONS
                    .iter()
                    .position(|r| r.code == region.code)
                    .expect("known region"),
            ),
            sku_index: Some(sku_index),
            rate,
            amount: sku.amount,
            resource: sku.resource,
            zonal: sku.zonal,
            product,
        }
    }

    /// A line about a service as a whole, not one SKU: taxes, credits, support, subscriptions.
    fn account_level(service: &Service, description: String) -> Self {
        Self {
            product_code: service.code,
            billing_entity: AWS,
            legal_entity: AWS_EMEA,
            usage_type: String::new(),
            operation: "",
            unit: None,
            family: None,
            description,
            instance_type: None,
            normalization_factor: NONE,
            region: None,
            sku: None,
            sku_index: None,
            rate: NONE,
            amount: Amount::One,
            resource: Resource::None,
            zonal: false,
            product: vec![
                ("product_name", service.name.to_string()),
                ("servicename", service.name.to_string()),
            ],
        }
    }
}

/// A stable 16-character AWS-style SKU code for a usage type and operation.
fn sku_code(usage_type: &str, operation: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut h = 0xCBF2_9CE4_8422_2325_u64;
    for b in usage_type.bytes().chain([0]).chain(operation.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    let (mut a, mut b) = (mix(h), mix(h ^ GOLDEN));
    (0..16)
        .map(|i| {
            let v = if i < 8 { &mut a } else { &mut b };
            let c = ALPHABET[(*v & 31) as usize];
            *v >>= 5;
            c as char
        })
        .collect()
}

/// Every item, plus the indices of the special ones.
pub(crate) struct Catalog {
    pub(crate) items: Vec<Item>,
    pub(crate) accounts: Weighted,
    pub(crate) skus: Weighted,
    pub(crate) regions: Vec<Weighted>,
    pub(crate) ri_usage: u16,
    pub(crate) ri_fee: u16,
    pub(crate) sp_fee: u16,
    pub(crate) business_support: u16,
    pub(crate) developer_support: u16,
    pub(crate) marketplace_fee: u16,
    pub(crate) marketplace_usage: u16,
    pub(crate) ec2: u16,
    pub(crate) s3: u16,
    pub(crate) rds: u16,
    pub(crate) lambda: u16,
}

impl Catalog {
    pub(crate) fn new() -> Self {
        let mut items: Vec<Item> = Vec::new();
        for (index, sku) in SKUS.iter().enumerate() {
            for region in &REGIONS {
                items.push(Item::usage(index, sku, region));
            }
        }
        let mut add = |item: Item| {
            items.push(item);
            (items.len() - 1) as u16
        };

        let m5_xlarge = SKUS
            .iter()
            .position(|s| s.usage == "BoxUsage:m5.xlarge")
            .expect("m5.xlarge in the catalog");
        let ri_usage = (m5_xlarge * REGIONS.len() + USE1) as u16;
        let ri_recurring = fixed(RI_RECURRING);
        let ri_fee = add(Item {
            usage_type: "USE1-HeavyUsage:m5.xlarge".to_string(),
            operation: "RunInstances",
            unit: Some("Hrs"),
            family: Some("Compute Instance"),
            description: format!(
                "USD {} hourly fee per Linux/UNIX (Amazon VPC), m5.xlarge instance",
                RI_RECURRING
            ),
            instance_type: Some("m5.xlarge"),
            region: Some(USE1),
            sku: Some(sku_code("USE1-HeavyUsage:m5.xlarge", "RunInstances")),
            rate: ri_recurring,
            resource: Resource::Reservation,
            ..Item::account_level(&EC2, String::new())
        });
        let sp_fee = add(Item {
            usage_type: "ComputeSP:3yrNoUpfront".to_string(),
            unit: Some("Hrs"),
            family: Some("Savings Plan"),
            sku: Some(sku_code("ComputeSP:3yrNoUpfront", "")),
            resource: Resource::SavingsPlan,
            ..Item::account_level(
                &Service::new("ComputeSavingsPlans", "Savings Plans for AWS Compute usage"),
                "3 year No Upfront Compute Savings Plan".to_string(),
            )
        });
        let business_support = add(Item {
            usage_type: "Dollar".to_string(),
            ..Item::account_level(
                &Service::new("AWSSupportBusiness", "AWS Support (Business)"),
                "AWS Support (Business)".to_string(),
            )
        });
        let developer_support = add(Item {
            usage_type: "Dollar".to_string(),
            ..Item::account_level(
                &Service::new("AWSDeveloperSupport", "AWS Support (Developer)"),
                "AWS Support (Developer)".to_string(),
            )
        });
        let marketplace_fee = add(Item {
            billing_entity: "AWS Marketplace",
            legal_entity: "Datadog, Inc.",
            usage_type: "SaaS-Subscription:pro".to_string(),
            ..Item::account_level(
                &Service::new(
                    "9s2k4hd7rw3qz0mxv5b8ny1tj",
                    "Datadog Pro (monthly subscription)",
                ),
                "Datadog Pro - monthly subscription fee".to_string(),
            )
        });
        let marketplace_usage = add(Item {
            billing_entity: "AWS Marketplace",
            legal_entity: "Sentinel Labs LLC",
            usage_type: "USE1-SoftwareUsage:t3.medium".to_string(),
            operation: "RunInstances",
            unit: Some("Hrs"),
            family: Some("Software"),
            region: Some(USE1),
            sku: Some(sku_code("USE1-SoftwareUsage:t3.medium", "RunInstances")),
            rate: fixed("0.35"),
            amount: Amount::Hours,
            resource: Resource::Instance,
            zonal: true,
            ..Item::account_level(
                &Service::new("6ub7c3mw0qz2kx5fh8tyd1nae", "Sentinel Threat Scanner"),
                "$0.35 per hour for Sentinel Threat Scanner on t3.medium".to_string(),
            )
        });
        let mut service = |s: &Service| {
            add(Item::account_level(
                s,
                format!("Tax for product code {}", s.code),
            ))
        };
        let (ec2, s3, rds, lambda) = (service(&EC2), service(&S3), service(&RDS), service(&LAMBDA));

        let regions = ACCOUNTS
            .iter()
            .map(|a| Weighted::new(a.regions.iter().map(|&(_, w)| w)))
            .collect();
        Self {
            items,
            accounts: Weighted::new(ACCOUNTS.iter().map(|a| a.weight)),
            skus: Weighted::new(SKUS.iter().map(|s| s.weight)),
            regions,
            ri_usage,
            ri_fee,
            sp_fee,
            business_support,
            developer_support,
            marketplace_fee,
            marketplace_usage,
            ec2,
            s3,
            rds,
            lambda,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{doubles, generate, options, read_all, strings};

    #[tokio::test]
    async fn commitments_are_sized_to_their_usage() {
        let (store, summary) = generate(&options(20_000, 11)).await;
        let (mut sp_used, mut sp_commitment, mut ri_used, mut ri_hours) = (0.0, 0.0, 0.0, 0.0);
        for b in &read_all(&store, &summary.files).await {
            let kind = strings(b, "line_item_line_item_type");
            let amount = doubles(b, "line_item_usage_amount");
            let effective = doubles(b, "savings_plan_savings_plan_effective_cost");
            let recurring = doubles(b, "savings_plan_recurring_commitment_for_billing_period");
            for i in 0..b.num_rows() {
                match kind[i].unwrap() {
                    "SavingsPlanCoveredUsage" => sp_used += effective[i].unwrap(),
                    "SavingsPlanRecurringFee" => sp_commitment += recurring[i].unwrap(),
                    "DiscountedUsage" => ri_used += amount[i].unwrap(),
                    "RIFee" => ri_hours += amount[i].unwrap(),
                    _ => {}
                }
            }
        }
        let (sp, ri) = (sp_used / sp_commitment, ri_used / ri_hours);
        assert!((0.8..1.1).contains(&sp), "Savings Plan utilization {sp}");
        assert!((0.8..1.1).contains(&ri), "reservation utilization {ri}");
    }
}
