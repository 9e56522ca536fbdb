//! The hot stages of a run, each alone, in rows per second (`cargo bench --bench stages`):
//!
//! - `ingest`: reading a generated month and normalizing it to the CUR 2.0 shape (every column);
//! - `rules`: group assignment, policies and rule resolution (`sql/rate.sql`, its rule columns);
//! - `proforma`: the full-width pro forma rows (`price::proforma`).
//!
//! Each reads the same month of `rerate sample` rows (seed 1) at 100k and 1M rows and discards
//! the result, so writing is left out: `compare.py` times whole runs, writes included.

use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use cur_sample::{SampleOptions, write_sample};
use datafusion::prelude::{DataFrame, SessionContext, col};
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use rerate::ingest::Input;
use rerate::job::Job;
use rerate::period::Period;
use rerate::price;
use tokio::runtime::Runtime;

const SIZES: [u64; 2] = [100_000, 1_000_000];

struct Month {
    ctx: SessionContext,
    config: rerate::config::Config,
    input: Input,
    period: Period,
}

impl Month {
    /// Writes (once per size, under the system temp folder) and discovers a generated month.
    fn new(rt: &Runtime, rows: u64) -> Month {
        let dir = std::env::temp_dir().join(format!("rerate-bench-stages/{rows}"));
        let opts = SampleOptions {
            rows,
            seed: 1,
            ..Default::default()
        };
        let period = opts.periods[0];
        rt.block_on(async {
            if !dir.join("done").exists() {
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                let prefix = ObjectPath::from_absolute_path(&dir).unwrap();
                write_sample(Arc::new(LocalFileSystem::new()), &prefix, &opts)
                    .await
                    .unwrap();
                std::fs::write(dir.join("done"), "").unwrap();
            }
            let config =
                rerate::load_config(Path::new("sample-data/billing.toml")).expect("sample config");
            let job = Job::open(config, dir.to_str()).unwrap();
            let input = job.discover().await.unwrap();
            Month {
                ctx: job.ctx,
                config: job.config,
                input,
                period,
            }
        })
    }

    fn cur(&self) -> DataFrame {
        self.input.period_table(&self.ctx, self.period).unwrap()
    }
}

/// Runs `df` to the end and drops its rows.
async fn drain(df: DataFrame) -> usize {
    let mut stream = df.execute_stream().await.unwrap();
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows();
    }
    rows
}

fn stages(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("stages");
    group.sample_size(10);
    for rows in SIZES {
        let month = Month::new(&rt, rows);
        group.throughput(Throughput::Elements(rows));
        group.bench_with_input(BenchmarkId::new("ingest", rows), &month, |b, m| {
            b.iter(|| assert_eq!(rt.block_on(drain(m.cur())), rows as usize));
        });
        group.bench_with_input(BenchmarkId::new("rules", rows), &month, |b, m| {
            b.iter(|| {
                rt.block_on(async {
                    let rated = price::rated(&m.ctx, None, &m.config, m.period, m.cur())
                        .await
                        .unwrap();
                    let rules = rated
                        .select(vec![
                            col("billing_group"),
                            col("treatment"),
                            col("pricing_rule"),
                            col("proforma_cost"),
                        ])
                        .unwrap();
                    assert_eq!(drain(rules).await, rows as usize);
                })
            });
        });
        group.bench_with_input(BenchmarkId::new("proforma", rows), &month, |b, m| {
            b.iter(|| {
                rt.block_on(async {
                    let rated = price::rated(&m.ctx, None, &m.config, m.period, m.cur())
                        .await
                        .unwrap();
                    drain(price::proforma(rated).unwrap()).await
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
