//! The AWS Data Exports layout: `<prefix>/data/BILLING_PERIOD=YYYY-MM/*.parquet` and a manifest
//! per period under `<prefix>/metadata/BILLING_PERIOD=YYYY-MM/`. `rerate sample` writes it,
//! `rerate run` reads it, and customer exports reproduce it for the customer's own CUR tools.

use object_store::path::Path;

use crate::period::Period;

/// `<prefix>/data/BILLING_PERIOD=YYYY-MM`.
pub fn data_dir(prefix: &Path, period: Period) -> Path {
    prefix
        .clone()
        .join("data")
        .join(format!("BILLING_PERIOD={period}"))
}

/// `<prefix>/metadata/BILLING_PERIOD=YYYY-MM/<name>-Manifest.json`.
pub fn manifest_path(prefix: &Path, period: Period, name: &str) -> Path {
    prefix
        .clone()
        .join("metadata")
        .join(format!("BILLING_PERIOD={period}"))
        .join(format!("{name}-Manifest.json"))
}

/// A manifest like the one AWS Data Exports writes beside each period's data.
pub struct Manifest<'a> {
    /// The export's name (AWS uses it as report and export name, and as file name prefix).
    pub name: &'a str,
    /// The write that produced the files, when there is one to name.
    pub execution_id: Option<&'a str>,
    pub period: Period,
    pub files: &'a [String],
    pub rows: u64,
    /// `(column, type)` as AWS names types (`string`, `double`, `timestamp`, `map<…>`).
    pub columns: Vec<(String, String)>,
}

impl Manifest<'_> {
    pub fn to_json(&self) -> Vec<u8> {
        let iso = |d: chrono::NaiveDate| format!("{}T00:00:00.000Z", d.format("%Y-%m-%d"));
        let columns: Vec<serde_json::Value> = self
            .columns
            .iter()
            .map(|(name, kind)| serde_json::json!({ "name": name, "type": kind }))
            .collect();
        let mut value = serde_json::json!({
            "version": "1.0",
            "reportName": self.name,
            "exportName": self.name,
            "billingPeriod": {
                "start": iso(self.period.first_day()),
                "end": iso(self.period.end_exclusive()),
            },
            "dataFiles": self.files,
            "dataFileCount": self.files.len(),
            "rowCount": self.rows,
            "compression": "SNAPPY",
            "format": "PARQUET",
            "columns": columns,
        });
        if let Some(id) = self.execution_id {
            value["executionId"] = id.into();
        }
        let mut out = serde_json::to_vec_pretty(&value).expect("a JSON value always serializes");
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_manifest_follow_the_aws_layout() {
        let p: Period = "2025-11".parse().unwrap();
        let prefix = Path::from("exports/acme");
        assert_eq!(
            data_dir(&prefix, p).as_ref(),
            "exports/acme/data/BILLING_PERIOD=2025-11"
        );
        assert_eq!(
            manifest_path(&prefix, p, "acme").as_ref(),
            "exports/acme/metadata/BILLING_PERIOD=2025-11/acme-Manifest.json"
        );
        let files = vec![
            "s3://b/exports/acme/data/BILLING_PERIOD=2025-11/acme-00001.snappy.parquet".to_string(),
        ];
        let m = Manifest {
            name: "acme",
            execution_id: Some("run-1"),
            period: p,
            files: &files,
            rows: 3,
            columns: vec![("line_item_unblended_cost".into(), "double".into())],
        };
        let v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(v["billingPeriod"]["start"], "2025-11-01T00:00:00.000Z");
        assert_eq!(v["billingPeriod"]["end"], "2025-12-01T00:00:00.000Z");
        assert_eq!(v["executionId"], "run-1");
        assert_eq!(v["dataFileCount"], 1);
        assert_eq!(v["columns"][0]["type"], "double");
    }
}
