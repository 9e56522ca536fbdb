//! An opened job: the validated config, where the input is, and the one session with the
//! input's store and the config tables registered. `run`, `validate`, `explain` and the
//! benches all start here.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::array::RecordBatch;
use datafusion::prelude::{DataFrame, SessionContext};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ingest::Input;
use crate::period::Period;
use crate::storage::{Counted, Location, Tally};
use crate::write::files::{self, Sink, WrittenFile};
use crate::{engine, price};

#[cfg(feature = "cluster")]
use crate::cluster::connect;

/// This build has no cluster mode (built without the `cluster` feature).
#[cfg(not(feature = "cluster"))]
fn connect(url: &str, _: &SessionContext) -> Result<SessionContext> {
    Err(Error::Cluster {
        what: format!("{url}: this rerate was built without cluster mode"),
    })
}

pub struct Job {
    pub config: Config,
    pub input: Location,
    pub ctx: SessionContext,
    /// A Ballista cluster's client (`[engine] cluster`): the period's pass over the input runs
    /// there; `None`: in `ctx`.
    pub cluster: Option<SessionContext>,
    /// Bytes of the input read so far, by every query of the session (the progress bars').
    pub read: Arc<AtomicU64>,
    /// Bytes written below the output so far (once [`Job::output`] has opened it).
    pub written: Arc<AtomicU64>,
    /// The input's store, counting its reads.
    counted: Counted,
}

impl Job {
    /// Resolves the input (`input`, else the config's `[io] input`) and opens the session.
    pub fn open(config: Config, input: Option<&str>) -> Result<Job> {
        let url = input.or(config.io.input.as_deref()).ok_or(Error::NoInput)?;
        let mut input = Location::parse(url, &config.storage)?;
        let read = Arc::new(AtomicU64::new(0));
        let counted = Counted::new(input.store).reading(Tally {
            under: input.prefix.clone(),
            bytes: read.clone(),
        });
        input.store = Arc::new(counted.clone());
        let ctx = engine::new_context(&config.engine)?;
        engine::register(&ctx, &input);
        price::tables::register(&ctx, &config)?;
        let cluster = config
            .engine
            .cluster
            .as_deref()
            .map(|url| connect(url, &ctx))
            .transpose()?;
        Ok(Job {
            config,
            input,
            ctx,
            cluster,
            read,
            written: Arc::new(AtomicU64::new(0)),
            counted,
        })
    }

    /// The output location (`output`, else the config's `[io] output`), registered so that the
    /// session's queries can read and write it.
    pub fn output(&self, output: Option<&str>) -> Result<Location> {
        let url = output
            .or(self.config.io.output.as_deref())
            .ok_or(Error::NoOutput)?;
        let mut output = Location::parse(url, &self.config.storage)?;
        let writes = Tally {
            under: output.prefix.clone(),
            bytes: self.written.clone(),
        };
        // One store per root URL in a session: an output beside the input (the same bucket, the
        // same file system) shares the input's store, counting the input's reads and the
        // output's writes.
        output.store = Arc::new(if output.root == self.input.root {
            self.counted.clone().writing(writes)
        } else {
            Counted::new(output.store).writing(writes)
        });
        engine::register(&self.ctx, &output);
        Ok(output)
    }

    /// Writes every table of `sinks` from one pass over `data` (every row of `period`), on the
    /// cluster if there is one ([`files::write_tables`]).
    pub async fn write_tables(
        &self,
        data: DataFrame,
        sinks: Vec<Sink>,
        period: Period,
    ) -> Result<Vec<Vec<WrittenFile>>> {
        match &self.cluster {
            #[cfg(feature = "cluster")]
            Some(cluster) => crate::cluster::write_tables(cluster, data, sinks, period).await,
            _ => files::write_tables(&self.ctx, data, sinks, period).await,
        }
    }

    /// Runs `plan` (planned in [`Job::ctx`]) to the end, on the cluster if there is one: its
    /// rows.
    pub async fn collect(&self, plan: DataFrame) -> Result<Vec<RecordBatch>> {
        engine::collect(self.cluster.as_ref(), plan).await
    }

    /// The accounting of the period whose rows `rated` is ([`price::rated`]): where every row
    /// went, with amounts (on the cluster, if there is one).
    pub async fn accounting(&self) -> Result<Vec<price::AccountRow>> {
        let plan = price::accounting_plan(&self.ctx).await?;
        price::accounting(&self.collect(plan).await?)
    }

    /// Lists the input's CUR files and checks each one's columns.
    pub async fn discover(&self) -> Result<Input> {
        Input::discover(&self.ctx, &self.input).await
    }
}
