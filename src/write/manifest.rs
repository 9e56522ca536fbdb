//! `runs/<run-id>.json`: what a run read, how it was configured, where every row went, the
//! control totals and the commits it made, for audit.

use object_store::ObjectStoreExt;

use crate::error::Result;
use crate::run::RunSummary;
use crate::storage::Location;

pub async fn write(output: &Location, summary: &RunSummary) -> Result<()> {
    let runs = output.child(&["runs"]);
    let path = runs.prefix.clone().join(format!("{}.json", summary.run_id));
    let body = serde_json::to_vec_pretty(summary).expect("the summary serializes");
    output
        .store
        .put(&path, body.into())
        .await
        .map_err(|e| runs.storage_error(e))?;
    Ok(())
}
