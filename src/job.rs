//! An opened job: the validated config, where the input is, and the one session with the
//! input's store and the config tables registered. `run`, `validate`, `explain` and the
//! benches all start here.

use datafusion::prelude::SessionContext;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ingest::Input;
use crate::storage::Location;
use crate::{engine, price};

pub struct Job {
    pub config: Config,
    pub input: Location,
    pub ctx: SessionContext,
}

impl Job {
    /// Resolves the input (`input`, else the config's `[io] input`) and opens the session.
    pub fn open(config: Config, input: Option<&str>) -> Result<Job> {
        let url = input.or(config.io.input.as_deref()).ok_or(Error::NoInput)?;
        let input = Location::parse(url, &config.storage)?;
        let ctx = engine::new_context(&config.engine)?;
        engine::register(&ctx, &input);
        price::tables::register(&ctx, &config)?;
        Ok(Job { config, input, ctx })
    }

    /// The output location (`output`, else the config's `[io] output`), registered so that the
    /// session's queries can read and write it.
    pub fn output(&self, output: Option<&str>) -> Result<Location> {
        let url = output
            .or(self.config.io.output.as_deref())
            .ok_or(Error::NoOutput)?;
        let output = Location::parse(url, &self.config.storage)?;
        engine::register(&self.ctx, &output);
        Ok(output)
    }

    /// Lists the input's CUR files and checks each one's columns.
    pub async fn discover(&self) -> Result<Input> {
        Input::discover(&self.ctx, &self.input).await
    }
}
