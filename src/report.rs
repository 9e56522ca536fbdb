//! The period at a glance (SPEC §6.5): `reports/billing_period=YYYY-MM/index.html`, one
//! self-contained page for the reseller: per group and in total billable against pro forma and
//! margin, margin by service, what each policy dropped, the accounts in no group, and the
//! period's documents. Charts are inline SVG computed here; the page has no script and loads
//! nothing. Rendered by minijinja from `templates/report.html`, HTML auto-escaping on.
//!
//! Everything on it comes from what the period already computed (the margin lines, the
//! unassigned rows, the documents): the report never reads the data again. It is the
//! reseller's: never under `exports/`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::{Config, UNASSIGNED};
use crate::error::{Error, Result};
use crate::invoice::{DocumentKind, Invoice, Status, services};
use crate::margin::{MarginKey, MarginLine};
use crate::money;
use crate::period::Period;
use crate::price::ChargeClass;
use crate::price::custom::PRODUCT_CODE;
use crate::write::manifest::Unassigned;

const TEMPLATE_NAME: &str = "report.html";
const TEMPLATE: &str = include_str!("../templates/report.html");

/// Where the report of `period` goes, relative to the output.
pub(crate) fn path(period: Period) -> String {
    format!("reports/billing_period={period}/index.html")
}

/// What the page is drawn from.
pub(crate) struct Facts<'a> {
    pub(crate) period: Period,
    pub(crate) run_id: &'a str,
    pub(crate) config: &'a Config,
    pub(crate) margin: &'a BTreeMap<MarginKey, MarginLine>,
    pub(crate) unassigned: &'a Unassigned,
    /// The period's documents, oldest first per group.
    pub(crate) documents: Vec<&'a Invoice>,
}

/// The page.
pub(crate) fn html(facts: &Facts) -> Result<String> {
    ENVIRONMENT
        .get_template(TEMPLATE_NAME)
        .and_then(|t| t.render(minijinja::context! { report => View::of(facts) }))
        .map_err(|error| Error::ReportRender {
            period: facts.period,
            error: Box::new(error),
        })
}

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template(TEMPLATE_NAME, TEMPLATE)
        .expect("templates/report.html parses (checked by the tests)");
    env
});

/// Chart width in SVG units; bars are scaled to the largest value of their chart.
const CHART_WIDTH: f64 = 420.0;

#[derive(Serialize)]
struct View {
    period: String,
    run_id: String,
    issuer: Option<String>,
    /// Per bill currency: the groups' totals (amounts of two currencies are never added).
    currencies: Vec<CurrencyView>,
    groups: Vec<GroupView>,
    dropped: DroppedView,
    unassigned: Option<UnassignedView>,
    documents: Vec<DocumentView>,
}

#[derive(Serialize)]
struct CurrencyView {
    currency: String,
    totals: Amounts,
    groups: Vec<GroupBar>,
}

/// One group's bars on its currency's chart: widths in SVG units.
#[derive(Serialize)]
struct GroupBar {
    name: String,
    billable: String,
    proforma: String,
    billable_width: f64,
    proforma_width: f64,
}

#[derive(Serialize)]
struct Amounts {
    billable: String,
    proforma: String,
    margin: String,
    margin_percent: Option<String>,
    negative: bool,
}

impl Amounts {
    fn of(line: &MarginLine, units: u32) -> Amounts {
        let show = |d: Decimal| money::display(money::round_to_minor(d, units), units);
        Amounts {
            billable: show(line.billable_cost),
            proforma: show(line.proforma_cost),
            margin: show(line.margin()),
            margin_percent: line.margin_percent().map(|p| format!("{:.1} %", p)),
            negative: line.margin() < Decimal::ZERO,
        }
    }
}

#[derive(Serialize)]
struct GroupView {
    name: String,
    display_name: String,
    currency: String,
    totals: Amounts,
    services: Vec<ServiceView>,
}

#[derive(Serialize)]
struct ServiceView {
    service: String,
    amounts: Amounts,
    /// The margin bar: its width (scaled to the group's largest margin either way) and side.
    bar_width: f64,
    negative: bool,
}

#[derive(Serialize)]
struct DroppedView {
    /// The policies that dropped anything, in the margin table's order.
    classes: Vec<&'static str>,
    /// Per group and currency: the amount per class (same order), formatted.
    rows: Vec<DroppedRow>,
}

#[derive(Serialize)]
struct DroppedRow {
    group: String,
    currency: String,
    amounts: Vec<String>,
}

#[derive(Serialize)]
struct UnassignedView {
    rows: u64,
    billable: String,
    accounts: Vec<String>,
}

#[derive(Serialize)]
struct DocumentView {
    number: String,
    group: String,
    kind: &'static str,
    status: &'static str,
    currency: String,
    total: String,
}

impl View {
    fn of(facts: &Facts) -> View {
        let config = facts.config;
        let units = |currency: &str| money::minor_units(currency).unwrap_or(2);
        // group -> currency -> service -> line
        let mut per_group: BTreeMap<(&str, &str), Vec<(&str, &MarginLine)>> = BTreeMap::new();
        for ((group, service, currency), line) in facts.margin {
            if group != UNASSIGNED {
                per_group
                    .entry((group, currency))
                    .or_default()
                    .push((service, line));
            }
        }
        let sum = |lines: &[(&str, &MarginLine)]| {
            lines.iter().fold(MarginLine::default(), |mut acc, (_, l)| {
                acc.billable_cost += l.billable_cost;
                acc.proforma_cost += l.proforma_cost;
                for (class, amount) in &l.dropped {
                    *acc.dropped.entry(*class).or_default() += amount;
                }
                acc
            })
        };
        // Groups in config order, as the invoices are.
        let order = |g: &str| config.groups.iter().position(|c| c.name == g);
        let mut keys: Vec<(&str, &str)> = per_group.keys().copied().collect();
        keys.sort_by_key(|(g, c)| (order(g), *g, *c));

        let mut groups = Vec::new();
        let mut group_totals: Vec<(&str, &str, MarginLine)> = Vec::new();
        for (group, currency) in &keys {
            let lines = &per_group[&(*group, *currency)];
            let total = sum(lines);
            let u = units(currency);
            let mut services: Vec<&(&str, &MarginLine)> = lines.iter().collect();
            services.sort_by(|a, b| {
                b.1.proforma_cost
                    .abs()
                    .cmp(&a.1.proforma_cost.abs())
                    .then(a.0.cmp(b.0))
            });
            let widest = services
                .iter()
                .map(|(_, l)| l.margin().abs())
                .max()
                .unwrap_or_default();
            let display_name = config
                .groups
                .iter()
                .find(|g| g.name == *group)
                .map_or(group.to_string(), |g| g.display_name.clone());
            groups.push(GroupView {
                name: group.to_string(),
                display_name,
                currency: currency.to_string(),
                totals: Amounts::of(&total, u),
                services: services
                    .into_iter()
                    .map(|(service, line)| ServiceView {
                        service: if *service == PRODUCT_CODE {
                            "Custom line items".to_string()
                        } else {
                            services::name(service).to_string()
                        },
                        amounts: Amounts::of(line, u),
                        bar_width: scaled(line.margin().abs(), widest, CHART_WIDTH / 2.0),
                        negative: line.margin() < Decimal::ZERO,
                    })
                    .collect(),
            });
            group_totals.push((group, currency, total));
        }

        let mut currencies: BTreeMap<&str, Vec<&(&str, &str, MarginLine)>> = BTreeMap::new();
        for t in &group_totals {
            currencies.entry(t.1).or_default().push(t);
        }
        let currencies = currencies
            .into_iter()
            .map(|(currency, totals)| {
                let u = units(currency);
                let widest = totals
                    .iter()
                    .flat_map(|(_, _, l)| [l.billable_cost.abs(), l.proforma_cost.abs()])
                    .max()
                    .unwrap_or_default();
                let all = totals.iter().fold(MarginLine::default(), |mut acc, t| {
                    acc.billable_cost += t.2.billable_cost;
                    acc.proforma_cost += t.2.proforma_cost;
                    acc
                });
                let show = |d: Decimal| money::display(money::round_to_minor(d, u), u);
                CurrencyView {
                    currency: currency.to_string(),
                    totals: Amounts::of(&all, u),
                    groups: totals
                        .iter()
                        .map(|(group, _, l)| GroupBar {
                            name: group.to_string(),
                            billable: show(l.billable_cost),
                            proforma: show(l.proforma_cost),
                            billable_width: scaled(l.billable_cost.abs(), widest, CHART_WIDTH),
                            proforma_width: scaled(l.proforma_cost.abs(), widest, CHART_WIDTH),
                        })
                        .collect(),
                }
            })
            .collect();

        let classes: Vec<ChargeClass> = ChargeClass::WITH_POLICY
            .into_iter()
            .filter(|class| {
                group_totals
                    .iter()
                    .any(|(_, _, l)| l.dropped.get(class).is_some_and(|d| !d.is_zero()))
            })
            .collect();
        let dropped = DroppedView {
            classes: classes.iter().map(|c| c.as_str()).collect(),
            rows: group_totals
                .iter()
                .filter(|(_, _, l)| l.dropped.values().any(|d| !d.is_zero()))
                .map(|(group, currency, l)| {
                    let u = units(currency);
                    DroppedRow {
                        group: group.to_string(),
                        currency: currency.to_string(),
                        amounts: classes
                            .iter()
                            .map(|c| {
                                let d = l.dropped.get(c).copied().unwrap_or_default();
                                money::display(money::round_to_minor(d, u), u)
                            })
                            .collect(),
                    }
                })
                .collect(),
        };

        let u = facts.unassigned;
        let unassigned = (u.rows > 0).then(|| UnassignedView {
            rows: u.rows,
            billable: money::display(money::round_to_minor(u.billable_cost, 2), 2),
            accounts: u.accounts.clone(),
        });
        let documents = facts
            .documents
            .iter()
            .map(|inv| DocumentView {
                number: inv.number.clone(),
                group: inv.billing_group.clone(),
                kind: match inv.kind {
                    DocumentKind::Invoice => "invoice",
                    DocumentKind::CreditNote => "credit note",
                },
                status: match inv.status {
                    Status::Draft => "draft",
                    Status::Issued => "issued",
                },
                currency: inv.currency.clone(),
                total: money::display(inv.total, inv.minor_units()),
            })
            .collect();
        View {
            period: facts.period.to_string(),
            run_id: facts.run_id.to_string(),
            issuer: config.invoice.issuer.as_ref().map(|p| p.name.clone()),
            currencies,
            groups,
            dropped,
            unassigned,
            documents,
        }
    }
}

/// `value` as a share of `max` times `width`, at least a hairline for anything not zero.
fn scaled(value: Decimal, max: Decimal, width: f64) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    if max.is_zero() || value.is_zero() {
        return 0.0;
    }
    let share = (value / max).to_f64().unwrap_or(0.0);
    ((share * width * 10.0).round() / 10.0).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(billable: &str, proforma: &str) -> MarginLine {
        MarginLine {
            billable_cost: billable.parse().unwrap(),
            proforma_cost: proforma.parse().unwrap(),
            dropped: BTreeMap::new(),
        }
    }

    fn key(g: &str, s: &str, c: &str) -> MarginKey {
        (g.to_string(), s.to_string(), c.to_string())
    }

    #[test]
    fn the_page_shows_each_group_service_drop_and_unassigned_account_escaped() {
        let config = crate::config::parse(
            "[invoice]\nissuer = { name = \"R&D <Resale>\", address = [\"x\"] }\n\
             [[billing-group]]\nname = \"acme\"\ndisplay-name = \"ACME <Corp>\"\n\
             payer-account-id = \"111111111111\"\npricing-plan = \"p\"\n\
             [[pricing-plan]]\nname = \"p\"\nrules = []\n",
            "test.toml",
        )
        .unwrap();
        let mut dropped = line("10", "0");
        dropped
            .dropped
            .insert(ChargeClass::Credits, "-4.5".parse().unwrap());
        let margin: BTreeMap<MarginKey, MarginLine> = [
            (key("acme", "AmazonEC2", "USD"), line("100", "110")),
            (key("acme", "AmazonS3", "USD"), line("50", "45")),
            (key("acme", "AWSSupport", "USD"), dropped),
            (key(UNASSIGNED, "AmazonEC2", "USD"), line("7.25", "0")),
        ]
        .into();
        let unassigned = Unassigned {
            rows: 3,
            billable_cost: "7.25".parse().unwrap(),
            accounts: vec!["888888888888".to_string()],
        };
        let page = html(&Facts {
            period: "2025-11".parse().unwrap(),
            run_id: "run-1",
            config: &config,
            margin: &margin,
            unassigned: &unassigned,
            documents: Vec::new(),
        })
        .unwrap();
        assert!(page.contains("ACME &lt;Corp&gt;"), "escaped");
        assert!(!page.contains("<Corp>"));
        assert!(page.contains("R&amp;D &lt;Resale&gt;"));
        // Totals: billable 160, pro forma 155, margin -5 (-3.2 %).
        assert!(page.contains("160.00") && page.contains("155.00"), "{page}");
        assert!(page.contains("-5.00") && page.contains("-3.2 %"), "{page}");
        assert!(page.contains("Amazon Elastic Compute Cloud (EC2)"));
        assert!(page.contains(">credits<") && page.contains("-4.50"));
        assert!(page.contains("888888888888"));
        assert!(page.contains("<svg"), "charts drawn in the page");
        for remote in ["http://", "https://", "<script", "@import", "url("] {
            assert!(!page.contains(remote), "{remote} in a self-contained page");
        }
    }

    #[test]
    fn bars_scale_to_the_largest_value_and_never_vanish() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(scaled(d("50"), d("100"), 420.0), 210.0);
        assert_eq!(scaled(d("100"), d("100"), 420.0), 420.0);
        assert_eq!(scaled(d("0.0001"), d("100"), 420.0), 1.0);
        assert_eq!(scaled(d("0"), d("100"), 420.0), 0.0);
        assert_eq!(scaled(d("5"), d("0"), 420.0), 0.0);
    }
}
