//! Against a real S3-compatible server (`s3s-fs`, SigV4 checked) on 127.0.0.1, started and
//! stopped by the tests: s3 -> s3 runs match local runs, credentials never reach the logs, a
//! server outage mid-run fails cleanly and leaves the previous version readable, and two runs
//! of one period at once do not corrupt the tables, and a Data Exports manifest chooses the files
//! read from a bucket.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use rerate::storage::Location;
use url::Url;

use crate::support;

const ACCESS_KEY: &str = "rerate-test-access";
const SECRET_KEY: &str = "rerate-test-secret-9f2c1e7d";
const S3S_FS_VERSION: &str = "0.14.1";

/// The `s3s-fs` binary: `$S3S_FS`, else the one `.ci/run` installs under
/// `~/.cache/rerate-tools`, else installed there now (once, a few minutes).
fn s3s_fs() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("S3S_FS") {
            return PathBuf::from(p);
        }
        let root = PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/rerate-tools");
        let bin = root.join("bin/s3s-fs");
        if !bin.exists() {
            let status = Command::new("cargo")
                .args([
                    "install",
                    "--locked",
                    "--features",
                    "binary",
                    "--version",
                    S3S_FS_VERSION,
                    "s3s-fs",
                    "--root",
                ])
                .arg(&root)
                .arg("--target-dir")
                .arg(root.join("build"))
                .env_remove("CARGO_TARGET_DIR")
                .status()
                .expect("cargo runs");
            assert!(
                status.success(),
                "installing s3s-fs {S3S_FS_VERSION} failed"
            );
        }
        bin
    })
    .clone()
}

pub(crate) struct S3Server {
    child: Option<Child>,
    port: u16,
    root: tempfile::TempDir,
}

impl S3Server {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = S3Server {
            child: None,
            port,
            root: tempfile::tempdir().unwrap(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    fn bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.path().join(name)).unwrap();
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a scheduler would give `rerate`.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// A location in the server for the test itself (credentials passed explicitly).
    pub(crate) fn location(&self, bucket: &str, prefix: &str) -> Location {
        let store = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_region("us-east-1")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .build()
            .unwrap();
        Location {
            store: Arc::new(store),
            root: Url::parse(&format!("s3://{bucket}/")).unwrap(),
            prefix: ObjectPath::from(prefix),
        }
    }

    /// Every file the server holds (objects, and multipart parts at its root).
    fn files(&self) -> Vec<PathBuf> {
        support::files_under(self.root.path())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rerate(server: &S3Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rerate"));
    cmd.args(args).envs(server.env()).env("RUST_LOG", "debug");
    cmd
}

fn run_args<'a>(config: &'a str, input: &'a str, output: &'a str) -> Vec<&'a str> {
    vec![
        "run", "--config", config, "--input", input, "--output", output, "--json",
    ]
}

/// Uploads every file under `local` to `location`, keeping relative paths.
impl S3Server {
    /// A server with the bundled sample month uploaded to `bucket/prefix`, and an empty bucket
    /// for the outputs.
    pub(crate) async fn with_sample(bucket: &str, prefix: &str, output_bucket: &str) -> S3Server {
        let server = S3Server::start();
        server.bucket(bucket);
        server.bucket(output_bucket);
        upload(
            &support::repo().join("sample-data/cur"),
            &server.location(bucket, prefix),
        )
        .await;
        server
    }
}

async fn upload(local: &Path, location: &Location) {
    for file in support::files_under(local) {
        let rel = file
            .strip_prefix(local)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let path = ObjectPath::from(format!("{}/{rel}", location.prefix));
        location
            .store
            .put(&path, std::fs::read(&file).unwrap().into())
            .await
            .unwrap();
    }
}

/// Rows and billable/pro forma totals per table, read back from wherever the tables are.
async fn totals(output: &Location) -> Vec<Vec<String>> {
    let ctx = SessionContext::new();
    for name in ["billable", "proforma", "margin"] {
        let mut table = rerate::write::delta::open(&output.child(&[name])).unwrap();
        table.load().await.unwrap();
        ctx.register_table(name, table.table_provider().await.unwrap())
            .unwrap();
    }
    support::query(
        &ctx,
        "SELECT 'billable', count(*), CAST(sum(line_item_unblended_cost) AS VARCHAR) FROM billable
         UNION ALL SELECT 'proforma', count(*), CAST(sum(line_item_unblended_cost) AS VARCHAR) FROM proforma
         UNION ALL SELECT 'margin', count(*), CAST(sum(margin) AS VARCHAR) FROM margin
         ORDER BY 1",
    )
    .await
}

async fn table_version(output: &Location, name: &str) -> u64 {
    let mut table = rerate::write::delta::open(&output.child(&[name])).unwrap();
    table.load().await.unwrap();
    table.version().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// s3s-fs tests share one port range and the machine's two cores: one at a time.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn s3_to_s3_matches_local_and_never_logs_credentials() {
    let _one = SERIAL.lock().await;
    let server = S3Server::with_sample("cur-exports", "acme/cur2", "billing-out").await;

    let config = support::repo().join("sample-data/billing.toml");
    let config = config.to_str().unwrap();
    let o = rerate(
        &server,
        &run_args(
            config,
            "s3://cur-exports/acme/cur2",
            "s3://billing-out/rerate",
        ),
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "s3 run failed: {}", stderr(&o));
    let log = stderr(&o);
    assert!(log.contains("DEBUG"), "debug logging was on");
    assert!(
        !log.contains(SECRET_KEY),
        "the secret key appears in the log"
    );
    let s3_summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    let local = tempfile::tempdir().unwrap();
    let local_out = local.path().join("out");
    let input = support::repo().join("sample-data/cur");
    let summary = support::run(
        &support::repo().join("sample-data/billing.toml"),
        &input,
        &local_out,
    )
    .await
    .unwrap();
    let local_summary = serde_json::to_value(&summary).unwrap();
    for key in ["input_rows", "control"] {
        assert_eq!(
            s3_summary["periods"][0][key], local_summary["periods"][0][key],
            "{key}"
        );
    }
    let s3_out = server.location("billing-out", "rerate");
    let local_loc = Location::parse(local_out.to_str().unwrap(), &Default::default()).unwrap();
    assert_eq!(totals(&s3_out).await, totals(&local_loc).await);
    // The manifest records input ETags read from the server.
    assert!(
        s3_summary["input"]["files"][0]["e_tag"].is_string(),
        "{}",
        s3_summary["input"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_mid_run_fails_with_exit_2_and_leaves_the_previous_version() {
    let _one = SERIAL.lock().await;
    let mut server = S3Server::start();
    server.bucket("cur");
    server.bucket("out");
    let input = server.location("cur", "big");
    let opts = cur_sample::SampleOptions {
        rows: 200_000,
        seed: 3,
        ..Default::default()
    };
    cur_sample::write_sample(input.store.clone(), &input.prefix, &opts)
        .await
        .unwrap();

    // Fail fast once the server is gone: two retries within five seconds.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("billing.toml");
    let base = std::fs::read_to_string(support::repo().join("sample-data/billing.toml")).unwrap();
    std::fs::write(
        &config,
        format!("{base}\n[storage]\nmax-retries = 2\nretry-timeout-seconds = 5\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let args = run_args(config, "s3://cur/big", "s3://out/rerate");

    let first = rerate(&server, &args).output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let output = server.location("out", "rerate");
    let before = totals(&output).await;
    let versions = [
        table_version(&output, "billable").await,
        table_version(&output, "proforma").await,
    ];

    // Second run: stop the server as soon as it starts writing data files.
    let existing = server.files();
    // Debug logs would fill a pipe nobody reads while we watch the server: log to a file.
    let log_path = tmp.path().join("second-run.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = rerate(&server, &args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if server.files().iter().any(|f| !existing.contains(f)) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it wrote anything"
        );
        assert!(Instant::now() < deadline, "the run never started writing");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop();
    let status = child.wait().unwrap();
    let message = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "outage must exit 2 (retryable): {message}"
    );
    assert!(
        message.contains("error:") && message.contains("s3://out/rerate"),
        "{message}"
    );

    // Back up: readers see exactly the previous version, then a re-run gives the same totals.
    server.spawn();
    assert_eq!(
        [
            table_version(&output, "billable").await,
            table_version(&output, "proforma").await
        ],
        versions
    );
    assert_eq!(totals(&output).await, before);
    let again = rerate(&server, &args).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(totals(&output).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_of_one_period_at_once_do_not_corrupt_the_tables() {
    let _one = SERIAL.lock().await;
    let server = S3Server::with_sample("cur", "cur2", "out").await;
    let config = support::repo().join("sample-data/billing.toml");
    let args = run_args(config.to_str().unwrap(), "s3://cur/cur2", "s3://out/rerate");
    let a = rerate(&server, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = rerate(&server, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [&a, &b] {
        assert!(
            o.status.success() || o.status.code() == Some(2),
            "a losing run fails cleanly as retryable: {:?} {}",
            o.status,
            stderr(o)
        );
    }
    assert!(a.status.success() || b.status.success(), "one run wins");
    let winner: serde_json::Value = serde_json::from_slice(if a.status.success() {
        &a.stdout
    } else {
        &b.stdout
    })
    .unwrap();
    let rows = winner["periods"][0]["input_rows"].to_string();
    let billable = &totals(&server.location("out", "rerate")).await[0];
    assert_eq!(
        billable[1], rows,
        "the period holds each input row exactly once"
    );
}

/// A Data Exports delivery in its own bucket, as AWS leaves it: the manifest's `s3://` URIs are
/// the very objects read, and the part it does not list is ignored and named.
#[tokio::test(flavor = "multi_thread")]
async fn the_manifest_chooses_the_files_on_s3_too() {
    let _one = SERIAL.lock().await;
    let server = S3Server::start();
    server.bucket("cur-bucket");
    server.bucket("out");
    let local = tempfile::tempdir().unwrap();
    crate::delivery::overwrite_layout(&local.path().join("exports")).await;
    upload(
        &local.path().join("exports"),
        &server.location("cur-bucket", "exports"),
    )
    .await;
    let config = crate::delivery::config(local.path());
    let o = rerate(
        &server,
        &run_args(
            config.to_str().unwrap(),
            "s3://cur-bucket/exports",
            "s3://out/rerate",
        ),
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "s3 run failed: {}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["periods"][0]["input_rows"], 2);
    assert_eq!(
        summary["input"]["ignored"][0]["url"],
        "s3://cur-bucket/exports/acme-cur/data/BILLING_PERIOD=2025-11/acme-cur-00002.snappy.parquet"
    );
    assert_eq!(
        summary["input"]["manifests"][0],
        "s3://cur-bucket/exports/acme-cur/metadata/BILLING_PERIOD=2025-11/acme-cur-Manifest.json"
    );
}

/// Every table's rows and amounts per period: what a reader of the latest versions sees.
async fn table_contents(output: &Location) -> Vec<Vec<String>> {
    let ctx = SessionContext::new();
    let mut queries = Vec::new();
    for (name, amount) in [
        ("billable", "line_item_unblended_cost"),
        ("proforma", "line_item_unblended_cost"),
        ("focus", "\"BilledCost\""),
        ("margin", "margin"),
        ("invoice_lines", "amount"),
        ("periods", "total"),
    ] {
        let mut table = rerate::write::delta::open(&output.child(&[name])).unwrap();
        table.load().await.unwrap();
        ctx.register_table(name, table.table_provider().await.unwrap())
            .unwrap();
        queries.push(format!(
            "SELECT '{name}', billing_period, count(*), CAST(sum({amount}) AS VARCHAR) FROM {name} GROUP BY 2"
        ));
    }
    // A close changes no amount, only what is issued.
    queries.push(
        "SELECT 'periods closed', billing_period, count(*), '' FROM periods WHERE status = 'closed' GROUP BY 2"
            .to_string(),
    );
    support::query(
        &ctx,
        &format!("{} ORDER BY 1, 2", queries.join(" UNION ALL ")),
    )
    .await
}

/// The tables of a period in the order a failed run restores them (the last committed first).
const RESTORE_ORDER: [&str; 6] = [
    "periods",
    "invoice_lines",
    "margin",
    "focus",
    "proforma",
    "billable",
];

/// The tables a failed run's summary says it restored, in the order it restored them.
fn restored_tables(summary: &serde_json::Value) -> Vec<&str> {
    summary["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["table"].as_str().unwrap())
        .collect()
}

/// The files of `dir` outside the Delta tables and run manifests: documents and exports.
fn documents_and_exports(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    ["invoices", "exports"]
        .iter()
        .flat_map(|d| support::files_under(&dir.join(d)))
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f.strip_prefix(dir).unwrap().to_path_buf(), bytes)
        })
        .collect()
}

/// SPEC §6.1: a run lands whole or not at all. The server refuses one write of the run in turn
/// (a file where the write needs a folder: each table's new partition, the exports' data and
/// manifest folders, the drafts' folder); after each failure every table reads as before the
/// run, no document or export changed, and the run summary says which tables were restored. With
/// the write allowed again the run lands and gives the totals of a run that never failed.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_refused_anywhere_leaves_every_output_as_it_was() {
    let _one = SERIAL.lock().await;
    let server = S3Server::start();
    server.bucket("cur");
    server.bucket("out");
    server.bucket("clean");
    let local = tempfile::tempdir().unwrap();
    let input = local.path().join("in");
    for (period, rows) in [
        ("2025-10", [("o1", "10"), ("o2", "2.5")]),
        ("2025-11", [("n1", "7.25"), ("n2", "1")]),
    ] {
        crate::delivery::cur_file_of(
            period,
            &input.join(format!("BILLING_PERIOD={period}/part.parquet")),
            &rows,
        )
        .await;
    }
    upload(&input, &server.location("cur", "cur2")).await;
    let config = crate::delivery::config(local.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[storage]\nmax-retries = 1\nretry-timeout-seconds = 2\n");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    let run = |output: &str, period: &str| {
        let mut args = run_args(config, "s3://cur/cur2", output);
        args.extend(["--period", period]);
        rerate(&server, &args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };

    // A clean run of both periods, for the totals a landed run must give.
    assert!(run("s3://clean/rerate", "2025-10").status.success());
    assert!(run("s3://clean/rerate", "2025-11").status.success());
    let clean = table_contents(&server.location("clean", "rerate")).await;

    // October has landed; November is the run that fails.
    let first = run("s3://out/rerate", "2025-10");
    assert!(first.status.success(), "{}", stderr(&first));
    let output = server.location("out", "rerate");
    let out_dir = server.root.path().join("out/rerate");
    let tables_before = table_contents(&output).await;
    let files_before = documents_and_exports(&out_dir);

    let all = RESTORE_ORDER;
    for (blocked, restored) in [
        // Billable and pro forma are written in one pass and committed after it: a failure
        // of either writes no table.
        ("billable/billing_period=2025-11", &[][..]),
        ("proforma/billing_period=2025-11", &[][..]),
        ("focus/billing_period=2025-11", &all[4..]),
        ("margin/billing_period=2025-11", &all[3..]),
        ("invoice_lines/billing_period=2025-11", &all[2..]),
        ("periods/billing_period=2025-11", &all[1..]),
        ("exports/acme/data/BILLING_PERIOD=2025-11", &all[..]),
        ("exports/acme/focus/BILLING_PERIOD=2025-11", &all[..]),
        ("invoices/billing_period=2025-11/drafts", &all[..]),
        ("exports/acme/metadata/BILLING_PERIOD=2025-11", &all[..]),
    ] {
        let blocker = out_dir.join(blocked);
        // An earlier failed run wrote billable and pro forma together and deleted both: no
        // file is left, only the folders the S3 server made for them (S3 itself has none).
        if blocker.is_dir() {
            let left = support::files_under(&blocker);
            assert!(left.is_empty(), "{blocked}: a failed run left {left:?}");
            std::fs::remove_dir_all(&blocker).unwrap();
        }
        std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
        std::fs::write(&blocker, b"not a folder").unwrap();
        let failed = run("s3://out/rerate", "2025-11");
        std::fs::remove_file(&blocker).unwrap();
        assert!(!failed.status.success(), "{blocked}: the run must fail");
        let summary: serde_json::Value = serde_json::from_slice(&failed.stdout)
            .unwrap_or_else(|e| panic!("{blocked}: {e}: {}", stderr(&failed)));
        let put_back = restored_tables(&summary);
        assert_eq!(put_back, restored, "{blocked}: {}", summary["error"]);
        assert_eq!(summary["not_restored"], serde_json::json!([]), "{blocked}");
        assert_eq!(
            table_contents(&output).await,
            tables_before,
            "{blocked}: tables"
        );
        assert!(
            documents_and_exports(&out_dir) == files_before,
            "{blocked}: a document or export changed"
        );
    }

    // A run lands whole: October, landed in the same run, goes back too when November fails,
    // and so does everything when the run manifest, the run's last write, cannot be written.
    let both = || {
        let mut args = run_args(config, "s3://cur/cur2", "s3://out/rerate");
        args.extend(["--period", "2025-10", "--period", "2025-11"]);
        rerate(&server, &args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let runs = out_dir.join("runs");
    let runs_aside = out_dir.join("runs-aside");
    for (blocked, moved) in [
        ("exports/acme/metadata/BILLING_PERIOD=2025-11", false),
        ("runs", true),
    ] {
        if moved {
            std::fs::rename(&runs, &runs_aside).unwrap();
        }
        let blocker = out_dir.join(blocked);
        std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
        std::fs::write(&blocker, b"not a folder").unwrap();
        let failed = both();
        std::fs::remove_file(&blocker).unwrap();
        if moved {
            std::fs::rename(&runs_aside, &runs).unwrap();
        }
        assert!(!failed.status.success(), "{blocked}: the run must fail");
        let summary: serde_json::Value = serde_json::from_slice(&failed.stdout)
            .unwrap_or_else(|e| panic!("{blocked}: {e}: {}", stderr(&failed)));
        let put_back = restored_tables(&summary);
        assert_eq!(put_back, all, "{blocked}: {}", summary["error"]);
        assert_eq!(table_contents(&output).await, tables_before, "{blocked}");
        assert!(
            documents_and_exports(&out_dir) == files_before,
            "{blocked}: a document or export changed"
        );
    }

    let landed = run("s3://out/rerate", "2025-11");
    assert!(landed.status.success(), "{}", stderr(&landed));
    assert_eq!(table_contents(&output).await, clean);
}

/// The books' lifecycle (`lifecycle.rs`) with the input and the outputs on the S3 server: issued
/// documents are written with conditional puts, drafts replaced, tables restored the same way.
#[tokio::test(flavor = "multi_thread")]
async fn a_period_closes_and_is_corrected_on_s3_too() {
    let _one = SERIAL.lock().await;
    let server = S3Server::with_sample("cur", "sample", "out").await;
    let local = tempfile::tempdir().unwrap();
    let call = |args: &[&str]| {
        rerate(&server, args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let books = crate::lifecycle::Books {
        rerate: &call,
        input: "s3://cur/sample",
        output: "s3://out/books",
        location: server.location("out", "books"),
        files: server.root.path().join("out/books"),
    };
    crate::lifecycle::lifecycle(books, local.path()).await;
}

/// SPEC §6.1 for `rerate close` and `rerate run --correct`: the server refuses one of their
/// writes in turn (each table commit, an issued document); after each failure every table reads
/// as before, no document changed (the ones the failed command had issued are gone), and the
/// command, run again, lands.
#[tokio::test(flavor = "multi_thread")]
async fn a_close_or_correction_that_fails_leaves_the_books_as_they_were() {
    let _one = SERIAL.lock().await;
    let server = S3Server::with_sample("cur", "sample", "out").await;
    let local = tempfile::tempdir().unwrap();
    let sample = support::repo().join("sample-data/billing.toml");
    let changed = local.path().join("billing.toml");
    let text = std::fs::read_to_string(&sample).unwrap();
    std::fs::write(
        &changed,
        text.replace(
            "type = \"markup\"\npercent = \"2.5\"",
            "type = \"markup\"\npercent = \"3\"",
        ),
    )
    .unwrap();
    let call = |args: &[&str]| {
        rerate(&server, args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let (sample, changed) = (sample.to_str().unwrap(), changed.to_str().unwrap());
    let close = || {
        call(&[
            "close",
            "--config",
            sample,
            "--output",
            "s3://out/books",
            "--period",
            "2025-11",
            "--json",
        ])
    };
    let correct = || {
        let mut args = run_args(changed, "s3://cur/sample", "s3://out/books");
        args.push("--correct");
        call(&args)
    };
    let first = call(&run_args(sample, "s3://cur/sample", "s3://out/books"));
    assert!(first.status.success(), "{}", stderr(&first));
    let output = server.location("out", "books");
    let out_dir = server.root.path().join("out/books");
    let documents = out_dir.join("invoices/billing_period=2025-11");

    /// Refuses the writes at `blocked` (a file where a folder must be, or a folder where a
    /// document must be), runs `command`, and checks the failure left everything as it was.
    async fn refused(
        blocked: &Path,
        as_folder: bool,
        command: &dyn Fn() -> Output,
        output: &Location,
        out_dir: &Path,
        restored: &[&str],
    ) {
        let (tables, files) = (table_contents(output).await, documents_and_exports(out_dir));
        // A folder the command writes into (a table's partition) waits aside meanwhile.
        let aside = blocked.with_extension("aside");
        let moved = !as_folder && blocked.is_dir();
        if moved {
            std::fs::rename(blocked, &aside).unwrap();
        }
        std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
        if as_folder {
            std::fs::create_dir_all(blocked).unwrap();
        } else {
            std::fs::write(blocked, b"not a folder").unwrap();
        }
        let failed = command();
        if as_folder {
            std::fs::remove_dir_all(blocked).unwrap();
        } else {
            std::fs::remove_file(blocked).unwrap();
        }
        if moved {
            std::fs::rename(&aside, blocked).unwrap();
        }
        let what = blocked.display();
        assert!(!failed.status.success(), "{what}: the command must fail");
        if !restored.is_empty() {
            let summary: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
            let put_back = restored_tables(&summary);
            assert_eq!(put_back, restored, "{what}: {}", summary["error"]);
        }
        assert_eq!(table_contents(output).await, tables, "{what}: tables");
        assert!(
            documents_and_exports(out_dir) == files,
            "{what}: a document changed"
        );
    }

    // The close: its two commits, then the documents it issues.
    for (blocked, as_folder) in [
        ("invoice_lines/billing_period=2025-11", false),
        ("periods/billing_period=2025-11", false),
        (
            "invoices/billing_period=2025-11/ER-202511-globex.html",
            true,
        ),
    ] {
        refused(
            &out_dir.join(blocked),
            as_folder,
            &close,
            &output,
            &out_dir,
            &[],
        )
        .await;
    }
    let closed = close();
    assert!(closed.status.success(), "{}", stderr(&closed));
    let issued = documents_and_exports(&out_dir);

    // The correction: every table restored, the credit note it had issued removed.
    refused(
        &documents.join("ER-202511-globex-R2.json"),
        true,
        &correct,
        &output,
        &out_dir,
        &RESTORE_ORDER,
    )
    .await;
    assert!(!documents.join("ER-202511-globex-CN1.json").exists());
    let corrected = correct();
    assert!(corrected.status.success(), "{}", stderr(&corrected));
    let after = documents_and_exports(&out_dir);
    for (path, bytes) in issued.iter().filter(|(p, _)| p.starts_with("invoices")) {
        assert!(
            after.iter().any(|(p, b)| p == path && b == bytes),
            "{path:?} changed"
        );
    }
    assert!(documents.join("ER-202511-globex-CN1.json").exists());
}
