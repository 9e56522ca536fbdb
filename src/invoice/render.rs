//! Invoice documents: the JSON (the README's fields, amounts as decimal strings) and the printable
//! HTML, rendered by minijinja from `templates/invoice.html` with HTML auto-escaping on.

use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{ChargeKind, DocumentKind, Invoice, Status, services};
use crate::config::Party;
use crate::money;

const TEMPLATE_NAME: &str = "invoice.html";
const TEMPLATE: &str = include_str!("../../templates/invoice.html");

/// The invoice as pretty-printed JSON.
pub fn json(invoice: &Invoice) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(invoice).expect("an invoice always serializes");
    out.push(b'\n');
    out
}

/// The invoice as a self-contained HTML page (inline CSS, no scripts, no external resources).
pub fn html(invoice: &Invoice) -> Result<String, minijinja::Error> {
    ENVIRONMENT
        .get_template(TEMPLATE_NAME)?
        .render(minijinja::context! { invoice => View::of(invoice) })
}

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Everything printed comes from config and data: escape it all, whatever the file name.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template(TEMPLATE_NAME, TEMPLATE)
        .expect("templates/invoice.html parses (checked by the render tests)");
    env
});

/// What the template prints: every amount and date already formatted.
#[derive(Serialize)]
struct View<'a> {
    number: &'a str,
    /// "Invoice" or "Credit note".
    title: &'static str,
    draft: bool,
    credit_note: bool,
    replaces: Option<&'a str>,
    cancels: Option<&'a str>,
    billing_group: &'a str,
    display_name: &'a str,
    period: String,
    period_range: String,
    issue_date: String,
    due_date: String,
    payment_terms_days: u32,
    currency: &'a str,
    bill_currency: &'a str,
    converted: bool,
    fx_rate: String,
    issuer: Option<&'a Party>,
    bill_to: &'a Party,
    sections: Vec<Section<'a>>,
    subtotal: String,
    taxes: Vec<TaxView<'a>>,
    total: String,
}

#[derive(Serialize)]
struct Section<'a> {
    label: &'static str,
    lines: Vec<LineView<'a>>,
}

#[derive(Serialize)]
struct LineView<'a> {
    description: &'a str,
    service: Option<&'a str>,
    bill_amount: String,
    amount: String,
}

#[derive(Serialize)]
struct TaxView<'a> {
    label: &'a str,
    percent: String,
    note: Option<&'a str>,
    amount: String,
}

impl<'a> View<'a> {
    fn of(inv: &'a Invoice) -> Self {
        let units = inv.minor_units();
        let bill_units = money::minor_units(&inv.bill_currency).unwrap_or(2);
        let amount = |d: Decimal| money::display(d, units);
        let date = |d: chrono::NaiveDate| d.format("%-d %B %Y").to_string();
        let mut sections: Vec<Section<'a>> = Vec::new();
        for line in &inv.lines {
            if sections.last().is_none_or(|s| s.label != line.kind.label()) {
                sections.push(Section {
                    label: line.kind.label(),
                    lines: Vec::new(),
                });
            }
            let custom = line.kind == ChargeKind::CustomLineItems;
            // Under a kind's heading the service name says it all; a Marketplace product's
            // opaque code goes beside its name, so the customer can look it up.
            let service = (!custom
                && services::name(&line.service) == line.service
                && line.service_name != line.service)
                .then_some(line.service.as_str());
            sections
                .last_mut()
                .expect("pushed above")
                .lines
                .push(LineView {
                    description: if custom {
                        &line.description
                    } else {
                        &line.service_name
                    },
                    service,
                    // Shown for reference only: the invoice amount is converted from the exact
                    // bill currency amount, never from this display.
                    bill_amount: money::display(
                        money::round_to_minor(line.bill_amount, bill_units),
                        bill_units,
                    ),
                    amount: amount(line.amount),
                });
        }
        View {
            number: &inv.number,
            title: match inv.kind {
                DocumentKind::Invoice => "Invoice",
                DocumentKind::CreditNote => "Credit note",
            },
            draft: inv.status == Status::Draft,
            credit_note: inv.kind == DocumentKind::CreditNote,
            replaces: inv.replaces.as_deref(),
            cancels: inv.cancels.as_deref(),
            billing_group: &inv.billing_group,
            display_name: &inv.display_name,
            period: inv.period_start.format("%B %Y").to_string(),
            period_range: format!("{} – {}", date(inv.period_start), date(inv.period_end)),
            issue_date: date(inv.issue_date),
            due_date: date(inv.due_date),
            payment_terms_days: inv.payment_terms_days,
            currency: &inv.currency,
            bill_currency: &inv.bill_currency,
            converted: inv.currency != inv.bill_currency,
            fx_rate: inv.fx_rate.to_string(),
            issuer: inv.issuer.as_ref(),
            bill_to: &inv.bill_to,
            sections,
            subtotal: amount(inv.subtotal),
            taxes: inv
                .taxes
                .iter()
                .map(|t| TaxView {
                    label: &t.label,
                    percent: t.percent.normalize().to_string(),
                    note: t.note.as_deref(),
                    amount: amount(t.amount),
                })
                .collect(),
            total: amount(inv.total),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::config::TaxProfile;
    use crate::invoice::{Charge, price};

    fn invoice(currency: &str, fx: &str, description: &str) -> Invoice {
        let charges = [
            Charge {
                kind: ChargeKind::Usage,
                service: "AmazonEC2".into(),
                service_name: "Amazon Elastic Compute Cloud (EC2)".into(),
                description: "Amazon Elastic Compute Cloud (EC2)".into(),
                amount: Decimal::from(950),
            },
            Charge {
                kind: ChargeKind::CustomLineItems,
                service: "CustomLineItem".into(),
                service_name: "Services".into(),
                description: description.into(),
                amount: Decimal::from(-100),
            },
        ];
        let units = money::minor_units(currency).unwrap();
        let tax = TaxProfile {
            name: "vat".into(),
            label: "VAT".into(),
            percent: Decimal::from(23),
            reverse_charge: false,
        };
        let fx_rate = Decimal::from_str(fx).unwrap();
        let a = price(&charges, fx_rate, units, Some(&tax)).unwrap();
        let period: crate::period::Period = "2025-11".parse().unwrap();
        Invoice {
            number: "ER-202511-acme".into(),
            kind: DocumentKind::Invoice,
            status: Status::Draft,
            revision: 1,
            replaces: None,
            cancels: None,
            issued_at: None,
            billing_group: "acme".into(),
            display_name: "ACME <Corp>".into(),
            billing_period: period,
            period_start: period.first_day(),
            period_end: period.end_exclusive().pred_opt().unwrap(),
            issue_date: period.end_exclusive(),
            due_date: period.end_exclusive() + chrono::Days::new(30),
            payment_terms_days: 30,
            currency: currency.into(),
            bill_currency: "USD".into(),
            fx_rate,
            issuer: Some(Party {
                name: "Example Reseller Ltd".into(),
                address: vec!["1 Main St".into(), "Dublin".into()],
                tax_id: Some("IE123".into()),
            }),
            bill_to: Party {
                name: "ACME <Corp> & Sons".into(),
                address: vec!["2 High St".into()],
                tax_id: None,
            },
            lines: a.lines,
            subtotal: a.subtotal,
            taxes: a.taxes,
            total: a.total,
        }
    }

    #[test]
    fn json_has_the_spec_fields_with_amounts_as_strings() {
        let inv = invoice("EUR", "0.9210", "Managed services");
        let v: serde_json::Value = serde_json::from_slice(&json(&inv)).unwrap();
        for key in [
            "number",
            "kind",
            "status",
            "revision",
            "replaces",
            "billing_group",
            "billing_period",
            "issue_date",
            "due_date",
            "currency",
            "fx_rate",
            "issuer",
            "bill_to",
            "lines",
            "subtotal",
            "taxes",
            "total",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {v:#}");
        }
        assert_eq!(
            (&v["kind"], &v["status"]),
            (&"invoice".into(), &"draft".into())
        );
        assert_eq!(v["fx_rate"], "0.9210");
        assert_eq!(v["issue_date"], "2025-12-01");
        assert_eq!(v["lines"][0]["amount"], "874.95");
        assert_eq!(v["lines"][0]["kind"], "usage");
        assert_eq!(v["lines"][0]["service"], "AmazonEC2");
        assert_eq!(v["lines"][1]["amount"], "-92.10");
        assert_eq!(v["lines"][1]["kind"], "custom_line_items");
        assert_eq!(v["subtotal"], "782.85");
        assert_eq!(v["taxes"][0]["percent"], "23");
        assert_eq!(v["taxes"][0]["amount"], "180.06");
        assert_eq!(v["total"], "962.91");
        let jpy = invoice("JPY", "150", "x");
        let v: serde_json::Value = serde_json::from_slice(&json(&jpy)).unwrap();
        assert_eq!(v["lines"][0]["amount"], "142500");
    }

    #[test]
    fn html_escapes_config_text_and_shows_the_totals() {
        let inv = invoice("EUR", "0.9210", "<script>alert(1)</script>");
        let page = html(&inv).unwrap();
        assert!(!page.contains("<script>"), "unescaped description");
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("ACME &lt;Corp&gt; &amp; Sons"));
        assert!(page.contains("ER-202511-acme"));
        assert!(page.contains("962.91"));
        assert!(page.contains("874.95"));
        assert!(page.contains("@page"));
        // Self-contained: nothing fetched from anywhere.
        for external in ["http://", "https://", "src=", "<link", "@import", "url("] {
            assert!(!page.contains(external), "{external} in the page");
        }
    }

    #[test]
    fn html_names_the_bill_currency_it_converts_from() {
        let mut inv = invoice("EUR", "0.128", "Managed services");
        let page = html(&inv).unwrap();
        assert!(page.contains("1 USD = 0.128 EUR"), "{page}");
        assert!(page.contains("Amount (USD)"));
        inv.bill_currency = "CNY".into();
        let page = html(&inv).unwrap();
        assert!(
            page.contains("priced in CNY and converted at 1 CNY = 0.128 EUR"),
            "{page}"
        );
        assert!(page.contains("Amount (CNY)"));
        assert!(!page.contains("USD"), "{page}");
        // Invoiced in the bill currency: nothing converted, nothing to explain.
        let mut same = invoice("CNY", "1", "Managed services");
        same.bill_currency = "CNY".into();
        let page = html(&same).unwrap();
        assert!(!page.contains("converted at"), "{page}");
        // One amount column, the invoice currency's.
        assert_eq!(page.matches("Amount (CNY)").count(), 1, "{page}");
        let json: serde_json::Value = serde_json::from_slice(&json(&same)).unwrap();
        assert_eq!(json["bill_currency"], "CNY");
        assert_eq!(json["lines"][0]["bill_amount"], "950");
    }

    #[test]
    fn documents_read_back_as_written() {
        let at = chrono::DateTime::from_timestamp(1_764_752_400, 0).unwrap();
        let issued = invoice("EUR", "0.9210", "Managed services").issued(at);
        let note = issued.credit_note("ER-202511-acme-CN1".into(), at);
        for doc in [issued, note] {
            let back: Invoice = serde_json::from_slice(&json(&doc)).unwrap();
            assert_eq!(back, doc);
        }
    }

    #[test]
    fn drafts_say_so_and_issued_documents_do_not() {
        let draft = invoice("EUR", "0.9210", "Managed services");
        let page = html(&draft).unwrap();
        assert!(
            page.contains("<title>DRAFT Invoice ER-202511-acme</title>"),
            "{page}"
        );
        assert!(page.contains("class=\"draft-mark\""));
        let at = chrono::DateTime::from_timestamp(1_764_752_400, 0).unwrap();
        let issued = draft.issued(at);
        let page = html(&issued).unwrap();
        assert!(!page.contains("DRAFT"), "{page}");
        assert!(page.contains("Amount due"));

        let note = issued.credit_note("ER-202511-acme-CN1".into(), at);
        let page = html(&note).unwrap();
        assert!(page.contains("<h1>CREDIT NOTE</h1>"), "{page}");
        assert!(page.contains("Cancels invoice</th><td>ER-202511-acme<"));
        assert!(page.contains("-962.91"), "{page}");
        assert!(!page.contains("Amount due") && !page.contains("Please pay"));

        let replacement = invoice("EUR", "0.9210", "Managed services").replacement(
            "ER-202511-acme-R2".into(),
            &issued,
            at,
        );
        let page = html(&replacement).unwrap();
        assert!(
            page.contains("Replaces invoice</th><td>ER-202511-acme<"),
            "{page}"
        );
        assert!(page.contains("<h1>INVOICE</h1>"));
    }

    #[test]
    fn html_renders_reverse_charge_and_zero_decimal_currencies() {
        let mut inv = invoice("JPY", "150.25", "Managed services");
        inv.taxes[0].reverse_charge = true;
        inv.taxes[0].note = Some(crate::invoice::reverse_charge_note("VAT"));
        let page = html(&inv).unwrap();
        assert!(page.contains("reverse-charge mechanism"));
        assert!(page.contains("142,738"), "{page}");
    }
}
