//! `rerate validate`: the config and every input file's schema checked, periods found, one bill
//! currency per payer and group, FX rates present; nothing written.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::ingest::delivery::IgnoredFile;
use crate::job::Job;
use crate::period::Period;

#[derive(Debug, Clone, Serialize)]
pub struct ValidateSummary {
    pub config_sha256: String,
    pub billing_groups: Vec<String>,
    pub input: Option<String>,
    pub files: usize,
    /// Parquet files the manifests leave out, and why.
    pub ignored: Vec<IgnoredFile>,
    /// Rows per billing period found in the input.
    pub periods: BTreeMap<String, u64>,
}

pub async fn validate(config_path: &Path, input: Option<&str>) -> Result<ValidateSummary> {
    let config = crate::load_config(config_path)?;
    let mut summary = ValidateSummary {
        config_sha256: config.hash.clone(),
        billing_groups: config.groups.iter().map(|g| g.name.clone()).collect(),
        input: None,
        files: 0,
        ignored: Vec::new(),
        periods: BTreeMap::new(),
    };
    if input.or(config.io.input.as_deref()).is_none() {
        return Ok(summary);
    }
    let job = Job::open(config, input)?;
    let discovered = job.discover().await?;
    let periods = discovered.periods(&job.ctx).await?;
    let selected: Vec<Period> = periods.keys().copied().collect();
    let currencies =
        crate::price::currency::find(&job.ctx, &discovered, &selected, &job.config).await?;
    job.config
        .check_fx(&selected, |p, g| currencies.of(p, g).to_string())?;
    summary.input = Some(job.input.to_string());
    summary.files = discovered.files.len();
    summary.ignored = discovered.ignored.clone();
    summary.periods = periods
        .into_iter()
        .map(|(p, counted)| (p.to_string(), counted.rows))
        .collect();
    Ok(summary)
}
