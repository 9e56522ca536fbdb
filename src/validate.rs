//! `rerate validate`: the config and every input file's schema checked, periods found, FX rates
//! present; nothing written.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::ingest::Input;
use crate::storage::Location;
use crate::{engine, price};

#[derive(Debug, Clone, Serialize)]
pub struct ValidateSummary {
    pub config_sha256: String,
    pub billing_groups: Vec<String>,
    pub input: Option<String>,
    pub files: usize,
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
        periods: BTreeMap::new(),
    };
    let Some(url) = input.or(config.io.input.as_deref()) else {
        return Ok(summary);
    };
    let location = Location::parse(url, &config.storage)?;
    let ctx = engine::new_context(&config.engine)?;
    engine::register(&ctx, &location);
    price::tables::register(&ctx, &config)?;
    let discovered = Input::discover(&ctx, &location).await?;
    let periods = discovered.periods(&ctx).await?;
    config.check_fx(&periods.keys().copied().collect::<Vec<_>>())?;
    summary.input = Some(location.to_string());
    summary.files = discovered.files.len();
    summary.periods = periods
        .into_iter()
        .map(|(p, n)| (p.to_string(), n))
        .collect();
    Ok(summary)
}
