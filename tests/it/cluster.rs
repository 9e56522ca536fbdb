//! Cluster mode (SPEC §7.1) on a real Ballista cluster: a scheduler and two executors, each
//! `rerate cluster …` in a process of its own on 127.0.0.1, started and stopped by the tests.
//! A run on the cluster (`rerate run --cluster df://…`) writes every table with the same rows
//! as an in-process run of the same job, row for row: the bundled sample, a scenario whose pro
//! forma has custom line items (rows the driver writes beside the executors' pass), and the
//! sample read from and written to the S3 server. On real AWS data (three months, three input
//! files: Ballista gives each task several of a stage's partitions), every period's totals,
//! and each table's rows and sums per period, read back from its files.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use rerate::storage::Location;

use crate::s3;
use crate::support;

/// A scheduler and two executors, stopped when dropped; their logs in `dir`.
struct Cluster {
    children: Vec<Child>,
    scheduler: u16,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Started with `env` (the S3 server's, for executors that read and write it).
    fn start(env: &[(&'static str, String)]) -> Cluster {
        let mut cluster = Cluster {
            children: Vec::new(),
            scheduler: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        let scheduler = format!("127.0.0.1:{}", cluster.scheduler);
        cluster.spawn("scheduler", &["scheduler", "--bind", &scheduler], env);
        cluster.wait_for(cluster.scheduler);
        for i in 0..2 {
            let (flight, grpc) = (free_port(), free_port());
            let work = cluster.dir.path().join(format!("executor-{i}"));
            std::fs::create_dir_all(&work).unwrap();
            cluster.spawn(
                &format!("executor-{i}"),
                &[
                    "executor",
                    "--scheduler",
                    &scheduler,
                    "--bind",
                    &format!("127.0.0.1:{flight}"),
                    "--grpc-bind",
                    &format!("127.0.0.1:{grpc}"),
                    "--concurrency",
                    "2",
                    "--work-dir",
                    work.to_str().unwrap(),
                ],
                env,
            );
            cluster.wait_for(flight);
            cluster.wait_for(grpc);
        }
        cluster
    }

    fn spawn(&mut self, name: &str, args: &[&str], env: &[(&'static str, String)]) {
        let log = File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rerate"))
            .arg("cluster")
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("rerate cluster {name} starts: {e}"));
        self.children.push(child);
    }

    /// Waits until something listens on `port`; a process that exits instead fails the test.
    fn wait_for(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            for child in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("a cluster process exited ({status}):\n{}", self.logs());
                }
            }
            assert!(
                Instant::now() < deadline,
                "nothing listens on {port}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.scheduler)
    }

    /// Every process's log, for a failure's message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for path in support::files_under(self.dir.path()) {
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("--- {}\n", path.display()));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// `rerate run … --cluster` with `args`, in `env`; its summary.
    fn run(&self, args: &[&str], env: &[(&'static str, String)]) -> serde_json::Value {
        let o = Command::new(env!("CARGO_BIN_EXE_rerate"))
            .arg("run")
            .args(args)
            .args(["--cluster", &self.url(), "--json"])
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "the cluster run failed: {}\n{}",
            stderr(&o),
            self.logs()
        );
        assert!(
            self.tasks_run() > 0,
            "no executor ran a task:\n{}",
            self.logs()
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// Tasks the executors have finished so far, as their logs say.
    fn tasks_run(&self) -> usize {
        (0..2)
            .map(|i| {
                let log = self.dir.path().join(format!("executor-{i}.log"));
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .matches("Finished task")
                    .count()
            })
            .sum()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The tables whose rows do not depend on when or where the run ran.
const COMPARED: [&str; 5] = ["billable", "proforma", "focus", "margin", "invoice_lines"];

/// A session with each of [`COMPARED`] under `output` registered by its name.
async fn compared_tables(output: &Location) -> SessionContext {
    let ctx = SessionContext::new();
    for name in COMPARED {
        let mut table = rerate::write::delta::open(&output.child(&[name])).unwrap();
        table.load().await.unwrap();
        ctx.register_table(name, table.table_provider().await.unwrap())
            .unwrap();
    }
    ctx
}

/// Every row of each of [`COMPARED`] under `output`, sorted, as text.
async fn table_rows(output: &Location) -> Vec<(String, Vec<Vec<String>>)> {
    let ctx = compared_tables(output).await;
    let mut tables = Vec::new();
    for name in COMPARED {
        let mut rows = support::query(&ctx, &format!("SELECT * FROM {name}")).await;
        rows.sort();
        tables.push((name.to_string(), rows));
    }
    tables
}

/// The tables under `cluster` hold the rows those under `local` hold, table for table.
async fn assert_same_tables(cluster: &Location, local: &Location) {
    let (cluster, local) = (table_rows(cluster).await, table_rows(local).await);
    for ((name, cluster), (_, local)) in cluster.iter().zip(&local) {
        assert!(!local.is_empty(), "{name} has rows");
        assert_eq!(cluster.len(), local.len(), "{name}: rows");
        for (c, l) in cluster.iter().zip(local) {
            assert_eq!(c, l, "{name}: a row differs");
        }
    }
}

/// Per table of [`COMPARED`] under `output` and per period: its rows and the sum of each of its
/// decimal columns, as text.
async fn table_sums(output: &Location) -> Vec<(String, Vec<Vec<String>>)> {
    let ctx = compared_tables(output).await;
    let mut tables = Vec::new();
    for name in COMPARED {
        let sums: Vec<String> = ctx
            .table(name)
            .await
            .unwrap()
            .schema()
            .fields()
            .iter()
            .filter(|f| matches!(f.data_type(), arrow::datatypes::DataType::Decimal128(..)))
            .map(|f| format!(", sum(\"{}\")", f.name()))
            .collect();
        assert!(!sums.is_empty(), "{name} has money columns");
        let sql = format!(
            "SELECT billing_period, count(*){} FROM {name} GROUP BY 1 ORDER BY 1",
            sums.concat()
        );
        tables.push((name.to_string(), support::query(&ctx, &sql).await));
    }
    tables
}

/// The summaries' totals, groups and table row counts, period for period.
fn assert_same_control(cluster: &serde_json::Value, local: &serde_json::Value) {
    let periods = |summary: &serde_json::Value| summary["periods"].as_array().unwrap().clone();
    let (cluster, local) = (periods(cluster), periods(local));
    assert!(!local.is_empty(), "the run has periods");
    assert_eq!(cluster.len(), local.len(), "periods");
    for (cluster, local) in cluster.iter().zip(&local) {
        assert_same_period(cluster, local);
    }
}

fn assert_same_period(cluster: &serde_json::Value, local: &serde_json::Value) {
    for key in [
        "period",
        "input_rows",
        "input_cost",
        "groups",
        "unassigned",
        "control",
    ] {
        assert_eq!(cluster[key], local[key], "{}: {key}", local["period"]);
    }
    let rows = |summary: &serde_json::Value| -> Vec<(String, u64)> {
        summary["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["table"].as_str().unwrap().into(),
                    t["rows"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        rows(cluster),
        rows(local),
        "{}: table rows",
        local["period"]
    );
}

async fn local_run(config: &Path, input: &Path, output: &Path) -> serde_json::Value {
    let manifest = support::run(config, input, output).await.unwrap();
    serde_json::to_value(&manifest).unwrap()
}

fn local(path: &Path) -> Location {
    Location::parse(path.to_str().unwrap(), &Default::default()).unwrap()
}

/// One cluster at a time: three processes each, on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_and_a_scenario_on_a_cluster_match_an_in_process_run_row_for_row() {
    let _one = SERIAL.lock().await;
    let cluster = Cluster::start(&[]);
    let tmp = tempfile::tempdir().unwrap();

    // The bundled sample.
    let config = support::repo().join("sample-data/billing.toml");
    let input = support::repo().join("sample-data/cur");
    assert_cluster_matches_in_process(&cluster, &config, &input, &tmp.path().join("sample")).await;

    // A scenario whose pro forma holds custom line items beside the executors' rows.
    let scenario = support::repo().join("tests/scenarios/e3-flat-custom-line-items");
    let input = tmp.path().join("e3/cur");
    support::csv_to_cur_parquet(
        &scenario.join("input.csv"),
        &input.join("data/part-00001.parquet"),
    )
    .await;
    let config = scenario.join("billing.toml");
    assert_cluster_matches_in_process(&cluster, &config, &input, &tmp.path().join("e3")).await;
}

/// Runs the job of `config` on `input` on the cluster and in-process, into folders of `dir`:
/// the same summary totals and the same rows in every table.
async fn assert_cluster_matches_in_process(
    cluster: &Cluster,
    config: &Path,
    input: &Path,
    dir: &Path,
) {
    let (on_cluster, in_process) = run_on_both(cluster, config, input, dir).await;
    assert_same_tables(&on_cluster, &in_process).await;
}

/// Runs the job of `config` on `input` on the cluster and in-process, into folders of `dir`,
/// and checks that their summaries agree: where each wrote.
async fn run_on_both(
    cluster: &Cluster,
    config: &Path,
    input: &Path,
    dir: &Path,
) -> (Location, Location) {
    let (on_cluster, in_process) = (dir.join("cluster"), dir.join("local"));
    let summary = cluster.run(
        &[
            "--config",
            config.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            on_cluster.to_str().unwrap(),
        ],
        &[],
    );
    let expected = local_run(config, input, &in_process).await;
    assert_same_control(&summary, &expected);
    (local(&on_cluster), local(&in_process))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_reads_and_writes_the_s3_server() {
    let _one = SERIAL.lock().await;
    let _s3 = s3::SERIAL.lock().await;
    let server = s3::S3Server::with_sample("cur-exports", "acme/cur2", "billing-out").await;
    let cluster = Cluster::start(&server.env());
    let config = support::repo().join("sample-data/billing.toml");
    let summary = cluster.run(
        &[
            "--config",
            config.to_str().unwrap(),
            "--input",
            "s3://cur-exports/acme/cur2",
            "--output",
            "s3://billing-out/rerate",
        ],
        &server.env(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let in_process = tmp.path().join("local");
    let expected = local_run(
        &config,
        &support::repo().join("sample-data/cur"),
        &in_process,
    )
    .await;
    assert_same_control(&summary, &expected);
    assert_same_tables(
        &server.location("billing-out", "rerate"),
        &local(&in_process),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn real_aws_cur_on_a_cluster_matches_an_in_process_run() {
    let Some(input) = support::realdata("wa-labs-workshopcur") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let cluster = Cluster::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let config = support::repo().join("tests/fixtures/wa-labs-workshop.toml");
    let (on_cluster, in_process) = run_on_both(&cluster, &config, &input, tmp.path()).await;
    let sums = table_sums(&in_process).await;
    assert_eq!(sums[0].1.len(), 3, "billable has three periods");
    assert_eq!(table_sums(&on_cluster).await, sums);
    // Each table's files are exactly those its log names: no attempt's file is left behind.
    for name in ["billable", "proforma"] {
        let on_disk = support::files_under(&tmp.path().join("cluster").join(name))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count();
        let mut table = rerate::write::delta::open(&on_cluster.child(&[name])).unwrap();
        table.load().await.unwrap();
        assert_eq!(table.get_file_uris().unwrap().count(), on_disk, "{name}");
    }
}
