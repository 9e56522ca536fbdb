//! Configuration cases as data: each `tests/config/<case>.toml` is a `billing.toml` whose leading
//! comment lines (its header) state what parsing it gives: `# expect: valid`, or one
//! `# expect:` line per problem in the order rerate reports them. A problem reads as a user sees
//! it (`billing.toml:line:col: key path: message`; every case is parsed under the name
//! `billing.toml`), so a case pins the whole text, location and wording, not a fragment of it.
//! Other header lines say what the case is about. A new case needs no new Rust.
//!
//! `RERATE_BLESS=1 cargo test --test it config::` writes what parsing gives into each header
//! instead of failing (like sqllogictest's `--complete`), for a person to review in the diff.

use crate::support;

/// Starts a header line that states one expected problem, or [`VALID`].
const EXPECT: &str = "# expect: ";
const VALID: &str = "valid";

#[test]
fn every_config_case_gives_what_its_header_expects() {
    let dir = support::repo().join("tests/config");
    let mut cases: Vec<_> = support::files_under(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no config cases in {}", dir.display());
    let bless = std::env::var_os("RERATE_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for path in &cases {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.strip_prefix(support::repo()).unwrap_or(path).display();
        if bless {
            let blessed = bless_header(&text);
            if blessed != text {
                std::fs::write(path, blessed).unwrap();
                eprintln!("blessed {name}");
            }
        } else if let Err(diff) = check(&text) {
            failures.push(format!("{name}:\n{diff}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} config cases failed (RERATE_BLESS=1 writes what they got into their headers):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    eprintln!("{} config cases", cases.len());
}

/// A case file: its leading comment lines, split into expectations and notes (what the case is
/// about, kept as they are by bless), and the rest of the file.
struct Case<'t> {
    notes: Vec<&'t str>,
    expected: Vec<&'t str>,
    body: &'t str,
}

impl<'t> Case<'t> {
    fn read(text: &'t str) -> Self {
        let mut case = Case {
            notes: Vec::new(),
            expected: Vec::new(),
            body: text,
        };
        while case.body.starts_with('#') {
            let (line, rest) = case.body.split_once('\n').unwrap_or((case.body, ""));
            match line.strip_prefix(EXPECT) {
                Some(expected) => case.expected.push(expected),
                None => case.notes.push(line),
            }
            case.body = rest;
        }
        case
    }

    /// The file with `got` as its expectations, after the notes.
    fn with_expected(&self, got: &[String]) -> String {
        let mut text = String::new();
        for note in &self.notes {
            text.push_str(note);
            text.push('\n');
        }
        for line in got {
            text.push_str(EXPECT);
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(self.body);
        text
    }
}

/// What parsing `text` gives, as header lines.
fn outcome(text: &str) -> Vec<String> {
    match rerate::config::parse(text, "billing.toml") {
        Ok(_) => vec![VALID.to_string()],
        Err(e) => e
            .problems
            .iter()
            .map(|p| {
                let line = p.to_string();
                assert!(!line.contains('\n'), "a problem spans lines: {line:?}");
                line
            })
            .collect(),
    }
}

/// Whether the header states what parsing gives; if not, both, for the failure message.
fn check(text: &str) -> Result<(), String> {
    let expected = Case::read(text).expected;
    let got = outcome(text);
    if expected == got {
        return Ok(());
    }
    let show = |lines: Vec<&str>| {
        if lines.is_empty() {
            return "  (no `# expect:` line)\n".to_string();
        }
        lines.iter().map(|l| format!("  {l}\n")).collect::<String>()
    };
    Err(format!(
        "expected:\n{}got:\n{}",
        show(expected),
        show(got.iter().map(String::as_str).collect())
    ))
}

/// The file with a header stating what parsing it gives. The header's length moves every
/// location below it, so this parses again until the header it writes is the one it reads: the
/// number of problems does not depend on comments, so the second rewrite already agrees.
fn bless_header(text: &str) -> String {
    let mut text = text.to_string();
    for _ in 0..3 {
        let got = outcome(&text);
        let case = Case::read(&text);
        if case.expected == got {
            return text;
        }
        text = case.with_expected(&got);
    }
    panic!("the header does not settle:\n{text}")
}

/// Bless on a case with a note and no expectation yet: the header it writes passes the check,
/// with the note kept first and the configuration unchanged below it.
#[test]
fn a_blessed_header_passes_the_check() {
    let body = "\n[[billing-group]]\nname = \"Acme\"\npayer-account-id = \"111111111111\"\npricing-plan = \"p\"\n";
    let text = format!("# A bad name and an unknown plan.\n{body}");
    assert!(check(&text).is_err());
    let blessed = bless_header(&text);
    assert_eq!(check(&blessed), Ok(()));
    let case = Case::read(&blessed);
    assert_eq!(case.notes, ["# A bad name and an unknown plan."]);
    assert_eq!(case.expected.len(), 2, "{blessed}");
    assert_eq!(case.body, body);
}
