//! Which files make the current delivery of each period: what AWS's manifests say (SPEC §3,
//! "Which files").
//!
//! AWS writes a manifest after the data files of a delivery, listing them:
//! - Data Exports (CUR 2.0): `<export>/metadata/BILLING_PERIOD=YYYY-MM/[<execution>/]<name>-Manifest.json`
//!   with `dataFiles` (full `s3://` URIs) and `billingPeriod`;
//! - legacy CUR: `<report>/<yyyymmdd-yyyymmdd>/[<assembly>/]<name>-Manifest.json` with
//!   `reportKeys` (bucket keys) of the current `assemblyId`.
//!
//! With "overwrite" delivery, files of an earlier, larger delivery can stay behind; with
//! "create new version", every earlier delivery stays. Either way the newest manifest of an
//! export and period names the complete delivery, so only its files are read: a file under the
//! same export and period that it does not list is ignored, and named so in the run summary.
//! Files under no manifest (a plain folder of Parquet files) are all read.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::folder_period;
use crate::error::{Error, Result};
use crate::period::Period;
use crate::storage::Location;

/// A Parquet file of the input that is not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredFile {
    pub url: String,
    pub reason: String,
}

/// The files to read, the manifests that chose them, and the files they leave out.
#[derive(Debug, Default)]
pub struct Delivery {
    pub read: Vec<ObjectMeta>,
    /// The manifest each period's files come from, by URL; empty without manifests.
    pub manifests: Vec<String>,
    pub ignored: Vec<IgnoredFile>,
}

/// A manifest as read: the export and period it is for, and the files it lists.
#[derive(Debug)]
struct Manifest {
    url: String,
    /// Where the export's files live: everything before `metadata/` or the date range folder.
    root: Path,
    export: String,
    period: Period,
    /// Bucket keys of the listed files.
    keys: Vec<String>,
    written: DateTime<Utc>,
}

/// Both manifest formats, by the fields this needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    /// Data Exports: full `s3://bucket/key` URIs.
    #[serde(default)]
    data_files: Option<Vec<String>>,
    /// Legacy CUR: bucket keys.
    #[serde(default)]
    report_keys: Option<Vec<String>>,
    #[serde(default)]
    billing_period: Option<BillingPeriod>,
    #[serde(default)]
    export_arn: Option<String>,
    #[serde(default)]
    export_name: Option<String>,
    #[serde(default)]
    report_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BillingPeriod {
    start: String,
}

/// Splits the objects under `location` into the Parquet files to read and the ones the newest
/// manifests leave out. `objects` is every object below the input, sorted by path.
pub async fn select(location: &Location, objects: Vec<ObjectMeta>) -> Result<Delivery> {
    let (manifests, parquet): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .filter(|m| {
            let name = m.location.filename().unwrap_or_default();
            name.ends_with("Manifest.json") || name.ends_with(".parquet")
        })
        .partition(|m| m.location.as_ref().ends_with("Manifest.json"));
    if manifests.is_empty() {
        return Ok(Delivery {
            read: parquet,
            ..Delivery::default()
        });
    }
    let read: Vec<Option<Manifest>> = futures::stream::iter(&manifests)
        .map(|meta| read_manifest(location, meta))
        .buffered(16)
        .try_collect()
        .await?;

    // The newest manifest of each export and period; the others are superseded.
    let mut newest: BTreeMap<(String, Period), Manifest> = BTreeMap::new();
    let mut superseded: Vec<Manifest> = Vec::new();
    for m in read.into_iter().flatten() {
        let key = (m.export.clone(), m.period);
        match newest.remove(&key) {
            Some(old) if (old.written, &old.url) > (m.written, &m.url) => {
                superseded.push(m);
                newest.insert(key, old);
            }
            Some(old) => {
                superseded.push(old);
                newest.insert(key, m);
            }
            None => {
                newest.insert(key, m);
            }
        }
    }

    // Each file by its path below the input, so that a manifest's bucket keys find it whether
    // the input is the export's own bucket or a copy of it elsewhere.
    let relative = |m: &ObjectMeta| -> String {
        m.location
            .prefix_match(&location.prefix)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>())
            .unwrap_or_default()
            .join("/")
    };
    let by_path: HashMap<String, usize> = parquet
        .iter()
        .enumerate()
        .map(|(i, m)| (relative(m), i))
        .collect();
    let find = |key: &str| -> Option<usize> {
        key_suffixes(key).find_map(|suffix| by_path.get(suffix).copied())
    };

    // Which files the newest manifests list (every key must find its file), and which only an
    // older one lists.
    let mut listed = vec![false; parquet.len()];
    for m in newest.values() {
        for key in &m.keys {
            let i = find(key).ok_or_else(|| Error::IncompleteDelivery {
                manifest: m.url.clone(),
                file: key.clone(),
            })?;
            listed[i] = true;
        }
    }
    let mut listed_by_older: Vec<Option<&Manifest>> = vec![None; parquet.len()];
    for m in &superseded {
        for i in m.keys.iter().filter_map(|k| find(k)) {
            listed_by_older[i].get_or_insert(m);
        }
    }
    let mut delivery = Delivery {
        manifests: newest.values().map(|m| m.url.clone()).collect(),
        ..Delivery::default()
    };
    for (i, meta) in parquet.into_iter().enumerate() {
        if listed[i] {
            delivery.read.push(meta);
            continue;
        }
        let covering = newest.values().find(|m| covers(m, &meta.location));
        let reason = match (covering, listed_by_older[i]) {
            (Some(m), _) => format!(
                "not listed by {}, the newest manifest of export {:?} for {}",
                m.url, m.export, m.period
            ),
            (None, Some(old)) => format!(
                "listed only by {}, an older manifest of export {:?} for {}",
                old.url, old.export, old.period
            ),
            (None, None) => {
                delivery.read.push(meta);
                continue;
            }
        };
        delivery.ignored.push(IgnoredFile {
            url: location.url_of(&meta.location).to_string(),
            reason,
        });
    }
    for f in &delivery.ignored {
        tracing::info!(file = %f.url, reason = %f.reason, "ignored");
    }
    Ok(delivery)
}

/// `a/b/c.parquet`, `b/c.parquet`, `c.parquet`: the key and its tails at `/` boundaries.
fn key_suffixes(key: &str) -> impl Iterator<Item = &str> {
    let key = key.trim_start_matches('/');
    std::iter::once(key).chain(key.match_indices('/').map(move |(i, _)| &key[i + 1..]))
}

/// Whether `file` belongs to the export and period of `m`: below the export's root and in the
/// manifest's period folder (or in none).
fn covers(m: &Manifest, file: &Path) -> bool {
    file.prefix_match(&m.root).is_some()
        && folder_period(file).is_none_or(|period| period == m.period)
}

/// Reads one manifest; `None` (with a log line) for a JSON file named like a manifest that
/// lists no Parquet data (a CSV report's manifest, an unrelated file).
async fn read_manifest(location: &Location, meta: &ObjectMeta) -> Result<Option<Manifest>> {
    let url = location.url_of(&meta.location).to_string();
    let bytes = location
        .store
        .get(&meta.location)
        .await
        .map_err(|e| location.storage_error(e))?
        .bytes()
        .await
        .map_err(|e| location.storage_error(e))?;
    let json: ManifestJson = serde_json::from_slice(&bytes).map_err(|e| Error::BadManifest {
        manifest: url.clone(),
        reason: e.to_string(),
    })?;
    let (files, from_uris) = match (json.data_files, json.report_keys) {
        (Some(files), _) => (files, true),
        (None, Some(keys)) => (keys, false),
        (None, None) => {
            tracing::warn!(manifest = %url, "skipped: neither dataFiles nor reportKeys");
            return Ok(None);
        }
    };
    let keys: Vec<String> = files
        .iter()
        .map(|f| if from_uris { bucket_key(f) } else { f.as_str() })
        .filter(|k| k.ends_with(".parquet"))
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        tracing::info!(manifest = %url, "skipped: lists no Parquet files");
        return Ok(None);
    }
    let period = json
        .billing_period
        .as_ref()
        .and_then(|b| period_of_start(&b.start))
        .or_else(|| folder_period(&meta.location))
        .or_else(|| date_range_period(&meta.location))
        .ok_or_else(|| Error::BadManifest {
            manifest: url.clone(),
            reason: "it names no billing period (billingPeriod.start) and its folder none"
                .to_string(),
        })?;
    let export = json
        .export_arn
        .or(json.export_name)
        .or(json.report_name)
        .unwrap_or_else(|| {
            let name = meta.location.filename().unwrap_or_default();
            name.trim_end_matches("Manifest.json")
                .trim_end_matches('-')
                .to_string()
        });
    Ok(Some(Manifest {
        url,
        root: export_root(&meta.location),
        export,
        period,
        keys,
        written: meta.last_modified,
    }))
}

/// `s3://bucket/a/b.parquet` -> `a/b.parquet`; anything else as it is.
fn bucket_key(uri: &str) -> &str {
    match uri.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, key)| key),
        None => uri,
    }
}

/// `2025-11-01T00:00:00.000Z` (Data Exports) or `20181001T000000.000Z` (legacy CUR).
fn period_of_start(start: &str) -> Option<Period> {
    let digits: String = start
        .chars()
        .take_while(|c| *c != 'T')
        .filter(char::is_ascii_digit)
        .collect();
    let year = digits.get(..4)?.parse().ok()?;
    let month = digits.get(4..6)?.parse().ok()?;
    Period::new(year, month)
}

/// The legacy CUR folder `yyyymmdd-yyyymmdd` a manifest lies in, as its period.
fn date_range_period(path: &Path) -> Option<Period> {
    path.parts()
        .find(|p| is_date_range(p.as_ref()))
        .and_then(|p| period_of_start(&p.as_ref()[..8]))
}

fn is_date_range(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() == 17
        && b[8] == b'-'
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[9..].iter().all(u8::is_ascii_digit)
}

/// The folder an export's files live under: the manifest's path up to its `metadata` folder
/// (Data Exports) or its `yyyymmdd-yyyymmdd` folder (legacy CUR); else the manifest's folder.
fn export_root(manifest: &Path) -> Path {
    let parts: Vec<_> = manifest.parts().collect();
    let end = parts
        .iter()
        .position(|p| p.as_ref() == "metadata" || is_date_range(p.as_ref()))
        .unwrap_or(parts.len().saturating_sub(1));
    Path::from_iter(parts[..end].iter().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_from_both_manifest_formats() {
        let p = |s: &str| period_of_start(s).map(|p| p.to_string());
        assert_eq!(p("2025-11-01T00:00:00.000Z").as_deref(), Some("2025-11"));
        assert_eq!(p("20181001T000000.000Z").as_deref(), Some("2018-10"));
        assert_eq!(p("garbage"), None);
        assert_eq!(p("2025-13-01T00:00:00.000Z"), None);
        let legacy = Path::from("cur/WorkshopCUR/20181001-20181101/WorkshopCUR-Manifest.json");
        assert_eq!(
            date_range_period(&legacy).map(|p| p.to_string()).as_deref(),
            Some("2018-10")
        );
    }

    #[test]
    fn export_roots_follow_both_layouts() {
        let root = |s: &str| export_root(&Path::from(s)).to_string();
        assert_eq!(
            root("b/acme/metadata/BILLING_PERIOD=2025-11/exec-1/acme-Manifest.json"),
            "b/acme"
        );
        assert_eq!(
            root("cur/WorkshopCUR/20181001-20181101/WorkshopCUR-Manifest.json"),
            "cur/WorkshopCUR"
        );
        assert_eq!(root("plain/x-Manifest.json"), "plain");
    }

    #[test]
    fn keys_match_by_their_tails() {
        assert_eq!(bucket_key("s3://bucket/a/b/c.parquet"), "a/b/c.parquet");
        assert_eq!(bucket_key("a/b/c.parquet"), "a/b/c.parquet");
        let tails: Vec<_> = key_suffixes("a/b/c.parquet").collect();
        assert_eq!(tails, ["a/b/c.parquet", "b/c.parquet", "c.parquet"]);
    }
}
