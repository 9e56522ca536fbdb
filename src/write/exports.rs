//! Customer exports: each group's pro forma CUR for a period, in the AWS Data Exports layout and
//! CUR 2.0 physical types, so a customer's existing CUR tooling (and rerate itself, one billing
//! level down) reads it unchanged, and the same rows as FOCUS 1.2 ([`Format`]):
//! ```text
//! exports/<group>/data/BILLING_PERIOD=YYYY-MM/<group>-<run-id>-00001.zstd.parquet
//! exports/<group>/metadata/BILLING_PERIOD=YYYY-MM/<group>-Manifest.json
//! exports/<group>/focus/BILLING_PERIOD=YYYY-MM/<group>-focus-<run-id>-00001.zstd.parquet
//! exports/<group>/metadata/BILLING_PERIOD=YYYY-MM/<group>-focus-Manifest.json
//! ```
//! The rows are the table version's this run committed (`proforma/` or `focus/`): a CUR export
//! is made of the group's pro forma files row group by row group, the columns CUR holds as pro
//! forma does copied, the amounts and rates encoded as CUR types ([`splice`]); a FOCUS export is
//! copies of the group's `focus/` files. Both zstd, as the tables. A re-run writes its files
//! under new names ([`write_period`], [`Staged`]); once everything else of the period has landed, every group's
//! manifest ([`Staged::publish`]), and, once the whole run has landed, deletes the files of
//! earlier runs ([`Staged::finish`]), so the folder never ends up with stale data, and a run that
//! fails before `finish` leaves every export as it was ([`Staged::discard`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Serialize;

use crate::data_exports;
use crate::error::Result;
use crate::ingest::columns::{self, CUR2_COLUMNS, Kind, map_type};
use crate::period::Period;
use crate::storage::Location;
use crate::write::Overwrites;
use crate::write::delta::{self, TableCommit};
use crate::write::{delete_or_log, files, splice};

/// Rows per export file (a file made of a table's row groups ends at the first row group that
/// reaches it); AWS splits large exports into numbered files the same way.
pub const ROWS_PER_FILE: usize = 1 << 20;

/// What one group's export holds.
#[derive(Debug, Clone, Serialize)]
pub struct GroupExport {
    pub billing_group: String,
    pub rows: u64,
    pub bytes: u64,
    pub files: Vec<String>,
    /// The Data Exports manifest (CUR exports; FOCUS exports have none).
    pub manifest: Option<String>,
    /// Files of earlier runs in the period's folder, removed once the run has landed.
    pub stale_files_removed: u64,
}

/// A CUR 2.0 column as AWS writes it: costs and quantities as doubles, rates as 10-decimal
/// strings, timestamps, maps (`discount` of doubles).
pub fn export_type(kind: Kind) -> DataType {
    match kind {
        Kind::Text | Kind::Rate => DataType::Utf8,
        Kind::Money | Kind::Quantity => DataType::Float64,
        Kind::Timestamp | Kind::TextMap => kind.data_type(),
        Kind::MoneyMap => map_type(DataType::Float64),
    }
}

/// The schema of every export file: the CUR 2.0 catalog, then the input's other columns as pro
/// forma keeps them (`extras`), without rerate's own columns (`billing_period`, `billing_group`,
/// `pricing_plan`, `pricing_rule`).
pub fn export_schema(extras: &[Field]) -> SchemaRef {
    let catalog = CUR2_COLUMNS
        .iter()
        .map(|(name, kind)| Field::new(*name, export_type(*kind), true));
    Arc::new(Schema::new(
        catalog.chain(extras.iter().cloned()).collect::<Vec<_>>(),
    ))
}

/// How a Data Exports manifest would name the type of a column beyond the catalog.
fn manifest_type_of(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "string".to_string(),
        DataType::Float64 => "double".to_string(),
        DataType::Float32 => "float".to_string(),
        DataType::Int64 => "bigint".to_string(),
        DataType::Int32 => "int".to_string(),
        DataType::Int16 => "smallint".to_string(),
        DataType::Int8 => "tinyint".to_string(),
        DataType::Boolean => "boolean".to_string(),
        DataType::Timestamp(..) => "timestamp".to_string(),
        DataType::Date32 => "date".to_string(),
        DataType::Binary => "binary".to_string(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        other => other.to_string().to_lowercase(),
    }
}

/// A column beyond the catalog as exported: as pro forma holds it, in the plain Arrow types
/// Parquet readers expect whatever views the Delta reader hands back (`Utf8`, not `Utf8View`),
/// maps in the CUR layout (`key_value` entries).
fn export_type_of(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::Dictionary(_, v) if v.is_string() => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) if fields.len() == 2 => {
                map_type(fields[1].data_type().clone())
            }
            _ => t.clone(),
        },
        _ => t.clone(),
    }
}

/// How the Data Exports manifest names a column type.
fn manifest_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Text | Kind::Rate => "string",
        Kind::Money | Kind::Quantity => "double",
        Kind::Timestamp => "timestamp",
        Kind::TextMap => "map<string,string>",
        Kind::MoneyMap => "map<string,double>",
    }
}

/// Each export column of a pro forma file's: the column of its name, cast to the export's type
/// (decimal money to double is the one place money becomes a float, because that is what CUR 2.0
/// readers expect; maps from Delta's entry names to CUR's `key_value`), or null.
fn export_sources(extras: &[Field]) -> Vec<splice::Source> {
    let catalog = CUR2_COLUMNS.iter().map(|&(name, kind)| match kind {
        // Pro forma never carries discounts (billable-only): an empty map column of the CUR
        // type.
        Kind::MoneyMap => splice::Source::Null,
        _ => splice::Source::Column(name.to_string()),
    });
    let extras = extras
        .iter()
        .map(|f| splice::Source::Column(f.name().clone()));
    catalog.chain(extras).collect()
}

/// What an export holds, and where it goes under `exports/<group>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The group's pro forma CUR 2.0, from `proforma/`: `data/BILLING_PERIOD=P/`, manifest
    /// `metadata/BILLING_PERIOD=P/<group>-Manifest.json`.
    Cur,
    /// The same rows as FOCUS 1.2, from `focus/`: `focus/BILLING_PERIOD=P/`, no manifest. (A
    /// second manifest under `metadata/` would make the folder two exports, and a CUR reader
    /// pointed at `exports/<group>/`, rerate included, would read the FOCUS files as CUR;
    /// without one, the CUR manifest covers them and they are ignored.)
    Focus,
}

impl Format {
    fn folder(self) -> &'static str {
        match self {
            Format::Cur => "data",
            Format::Focus => "focus",
        }
    }

    /// The export's name: its manifest's and its files' prefix.
    fn name(self, group: &str) -> String {
        match self {
            Format::Cur => group.to_string(),
            Format::Focus => format!("{group}-focus"),
        }
    }
}

/// The columns of an export file (what each row is projected to), the file schema and the
/// columns as the manifest names them.
struct Columns {
    /// What each column is of a table file's.
    sources: Vec<splice::Source>,
    schema: SchemaRef,
    manifest: Vec<(String, String)>,
}

impl Columns {
    /// A CUR 2.0 export: the catalog in CUR's physical types, then the input's other columns.
    fn cur(table: &DFSchema) -> Columns {
        // The input's other columns, in the types pro forma holds them (Delta's own map entry
        // names aside: a map is cast back to the CUR layout).
        let extras: Vec<Field> = columns::extras(table.as_arrow())
            .map(|f| Field::new(f.name(), export_type_of(f.data_type()), true))
            .collect();
        let manifest = CUR2_COLUMNS
            .iter()
            .map(|(name, kind)| (name.to_string(), manifest_type(*kind).to_string()))
            .chain(
                extras
                    .iter()
                    .map(|f| (f.name().clone(), manifest_type_of(f.data_type()))),
            )
            .collect();
        Columns {
            sources: export_sources(&extras),
            schema: export_schema(&extras),
            manifest,
        }
    }

    /// A FOCUS export: the table's columns as they are, without rerate's partition columns,
    /// in plain Arrow types.
    fn focus(table: &DFSchema) -> Columns {
        let fields: Vec<Field> = table
            .fields()
            .iter()
            .filter(|f| !delta::PARTITION_COLUMNS.contains(&f.name().as_str()))
            .map(|f| Field::new(f.name(), export_type_of(f.data_type()), true))
            .collect();
        Columns {
            sources: fields
                .iter()
                .map(|f| splice::Source::Column(f.name().clone()))
                .collect(),
            manifest: fields
                .iter()
                .map(|f| (f.name().clone(), manifest_type_of(f.data_type())))
                .collect(),
            schema: Arc::new(Schema::new(fields)),
        }
    }
}

/// Writes, for each `(commit, format)` of `sources`, the `format` export of every group in
/// `groups` for `period` from the table version `commit` made (pro forma for CUR, `focus/` for
/// FOCUS): staged together, published, discarded or finished together.
pub async fn write_period(
    ctx: &SessionContext,
    output: &Location,
    sources: &[(&TableCommit, Format)],
    period: Period,
    groups: &[&str],
    write_id: &str,
) -> Result<Staged> {
    let mut staged = Staged {
        output: output.clone(),
        groups: Vec::with_capacity(groups.len() * sources.len()),
        manifests: Overwrites::new(output.child(&["exports"])),
    };
    for &(commit, format) in sources {
        if let Err(e) = staged
            .write(ctx, commit, format, period, groups, write_id)
            .await
        {
            staged.discard().await;
            return Err(e);
        }
    }
    Ok(staged)
}

/// One group's new export files, written under new names beside the current delivery, and the
/// manifest that will make them current.
struct StagedGroup {
    format: Format,
    export: GroupExport,
    files: Vec<Path>,
    data_dir: Location,
    /// Where the manifest goes and what it says (`None`: a FOCUS export).
    manifest: Option<(Path, Vec<u8>)>,
    /// Files of earlier deliveries in the folder, found by `publish`: `finish` deletes them.
    stale: Vec<Path>,
}

/// A period's exports written but not yet current: readers who follow the manifests still see
/// the earlier delivery. [`Staged::publish`] makes them current (every manifest, then the
/// earlier files go in [`Staged::finish`]); until `finish`, [`Staged::discard`] leaves every
/// export as it was.
pub struct Staged {
    output: Location,
    groups: Vec<StagedGroup>,
    /// The manifests `publish` wrote over.
    manifests: Overwrites,
}

impl Staged {
    /// Stages the `format` export of every group from the table version `commit` made.
    async fn write(
        &mut self,
        ctx: &SessionContext,
        commit: &TableCommit,
        format: Format,
        period: Period,
        groups: &[&str],
        write_id: &str,
    ) -> Result<()> {
        let rows = delta::read_commit(ctx, &self.output, commit).await?;
        let columns = match format {
            Format::Cur => Columns::cur(rows.schema()),
            Format::Focus => Columns::focus(rows.schema()),
        };
        for group in groups {
            let target = Target::new(&self.output, format, period, group, write_id);
            let has_files = commit.files.iter().any(|f| f.group == *group);
            let staged = match format {
                Format::Focus if has_files => copy_group(&self.output, commit, target).await?,
                _ => splice_group(&self.output, commit, target, &columns).await?,
            };
            self.groups.push(staged);
        }
        Ok(())
    }

    /// Writes every group's manifest, keeping the earlier ones, and finds the files of earlier
    /// deliveries that `finish` is to delete; a failure puts the manifests back.
    pub async fn publish(&mut self) -> Result<()> {
        for i in 0..self.groups.len() {
            let g = &self.groups[i];
            let published = match &g.manifest {
                Some((path, body)) => self.manifests.put(path, body.clone().into()).await,
                None => Ok(()),
            };
            let stale = match published {
                Ok(()) => list(&g.data_dir).await.map(|found| {
                    let written: BTreeSet<&Path> = g.files.iter().collect();
                    found.into_iter().filter(|p| !written.contains(p)).collect()
                }),
                Err(e) => Err(e),
            };
            match stale {
                Ok(stale) => self.groups[i].stale = stale,
                Err(e) => {
                    self.discard().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// What each group's export of `format` holds (after `publish`: with the earlier files it
    /// replaces).
    pub fn exports(&self, format: Format) -> Vec<GroupExport> {
        self.groups
            .iter()
            .filter(|g| g.format == format)
            .map(|g| GroupExport {
                stale_files_removed: g.stale.len() as u64,
                ..g.export.clone()
            })
            .collect()
    }

    /// Puts back the manifests `publish` replaced and deletes the new files: every export as it
    /// was. Best effort (it runs on the way out of a failure): what it cannot undo is logged.
    pub async fn discard(&self) {
        if let Err(e) = self.manifests.undo().await {
            tracing::error!(error = %e, "could not put the earlier export manifests back");
        }
        delete_new(&self.output, self.groups.iter().flat_map(|g| &g.files)).await;
    }

    /// The run landed: deletes the files of earlier deliveries, now that no manifest names
    /// them. They are no longer current, so one left behind is only clutter: a failure here is
    /// logged, and the next run of the period removes what is left.
    pub async fn finish(self) {
        for p in self.groups.iter().flat_map(|g| &g.stale) {
            if let Err(e) = self.output.store.delete(p).await {
                tracing::warn!(file = %p, error = %e, "stale export file left");
            }
        }
    }
}

/// Deletes export files this run made, best effort (on the way out of a failure): what it
/// cannot delete is logged.
async fn delete_new(output: &Location, files: impl IntoIterator<Item = &Path>) {
    for path in files {
        delete_or_log(output.store.as_ref(), path, "a new export file").await;
    }
}

/// Where one group's export of a period goes.
struct Target {
    format: Format,
    period: Period,
    group: String,
    write_id: String,
    /// `exports/<group>/`.
    root: Location,
    /// The period's folder of the export's files.
    data_dir: Location,
    /// The export's name: its manifest's and its files' prefix.
    name: String,
}

impl Target {
    fn new(
        output: &Location,
        format: Format,
        period: Period,
        group: &str,
        write_id: &str,
    ) -> Target {
        let root = output.child(&["exports", group]);
        let data_dir = Location {
            prefix: root
                .prefix
                .clone()
                .join(format.folder())
                .join(format!("BILLING_PERIOD={period}")),
            ..root.clone()
        };
        Target {
            format,
            period,
            group: group.to_string(),
            write_id: write_id.to_string(),
            root,
            data_dir,
            name: format.name(group),
        }
    }

    /// The `n`th file (from 1), named as AWS names export files: `<name>-<write id>-0000n`.
    fn file(&self, n: usize, codec: &str) -> Path {
        self.data_dir.prefix.clone().join(format!(
            "{}-{}-{n:05}.{codec}.parquet",
            self.name, self.write_id
        ))
    }
}

/// A FOCUS export as server-side copies of the group's files in the `focus/` version `commit`
/// made: they hold exactly the export's columns (the partition columns are folders, not file
/// columns), so the rows are not read and encoded again. A failed copy deletes the copies made.
async fn copy_group(
    output: &Location,
    commit: &TableCommit,
    target: Target,
) -> Result<StagedGroup> {
    let table = output.child(&[&commit.table]);
    let mut files: Vec<Path> = Vec::new();
    let (mut rows, mut bytes) = (0_u64, 0_u64);
    for file in commit.files.iter().filter(|f| f.group == target.group) {
        let to = target.file(files.len() + 1, "zstd");
        let from = files::below(&table.prefix, &file.path);
        if let Err(e) = output.store.copy(&from, &to).await {
            delete_new(output, &files).await;
            return Err(output.storage_error(e));
        }
        files.push(to);
        rows += file.rows;
        bytes += file.size;
    }
    Ok(staged(output, target, files, rows, bytes, None))
}

/// An export made of the group's files in the table version `commit` made, row group by row
/// group ([`splice`]): the columns they hold as the export does (for a CUR export: text,
/// timestamps, tags) are copied, not read and encoded again; the others (amounts and rates) are
/// read and encoded in the export's types. Zstd, as the tables (the copied chunks are). A group
/// without files gets one file of no rows. A failure leaves none of its files.
async fn splice_group(
    output: &Location,
    commit: &TableCommit,
    target: Target,
    columns: &Columns,
) -> Result<StagedGroup> {
    let table = output.child(&[&commit.table]);
    let from: Vec<splice::SourceFile> = commit
        .files
        .iter()
        .filter(|f| f.group == target.group)
        .map(|f| splice::SourceFile {
            path: files::below(&table.prefix, &f.path),
            size: f.size,
        })
        .collect();
    let made = splice::splice(
        output,
        &from,
        &columns.schema,
        &columns.sources,
        &delta::properties(),
        ROWS_PER_FILE,
        |n| target.file(n, "zstd"),
    )
    .await?;
    let rows = made.iter().map(|f| f.rows).sum();
    let bytes = made.iter().map(|f| f.size).sum();
    let files = made.into_iter().map(|f| f.path).collect();
    let manifest = (target.format == Format::Cur).then_some(columns.manifest.as_slice());
    Ok(staged(output, target, files, rows, bytes, manifest))
}

/// A group's export as staged: its files, and the Data Exports manifest naming them with
/// `manifest`'s columns (`None`: an export without one).
fn staged(
    output: &Location,
    target: Target,
    files: Vec<Path>,
    rows: u64,
    bytes: u64,
    manifest: Option<&[(String, String)]>,
) -> StagedGroup {
    let urls: Vec<String> = files.iter().map(|p| output.url_of(p).to_string()).collect();
    let manifest = manifest.map(|columns| {
        let path = data_exports::manifest_path(&target.root.prefix, target.period, &target.name);
        let body = data_exports::Manifest {
            name: &target.name,
            execution_id: Some(&target.write_id),
            period: target.period,
            files: &urls,
            rows,
            columns: columns.to_vec(),
        }
        .to_json();
        (path, body)
    });
    tracing::debug!(group = target.group, format = ?target.format, rows, files = files.len(), "export staged");
    StagedGroup {
        format: target.format,
        export: GroupExport {
            billing_group: target.group,
            rows,
            bytes,
            files: urls,
            manifest: manifest
                .as_ref()
                .map(|(path, _)| output.url_of(path).to_string()),
            stale_files_removed: 0,
        },
        stale: Vec::new(),
        files,
        data_dir: target.data_dir,
        manifest,
    }
}

/// Every object under `dir` (none when the folder does not exist yet).
pub async fn list(dir: &Location) -> Result<Vec<Path>> {
    Ok(dir.list().await?.into_iter().map(|m| m.location).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_types_follow_cur_2_0() {
        let schema = export_schema(&[]);
        let t = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
        assert_eq!(t("line_item_unblended_cost"), DataType::Float64);
        assert_eq!(t("line_item_unblended_rate"), DataType::Utf8);
        assert_eq!(t("line_item_usage_amount"), DataType::Float64);
        assert!(matches!(
            t("line_item_usage_start_date"),
            DataType::Timestamp(..)
        ));
        assert!(matches!(t("product"), DataType::Map(..)));
        assert_eq!(t("discount"), map_type(DataType::Float64));
        for rerate_only in [
            "billing_period",
            "billing_group",
            "pricing_plan",
            "pricing_rule",
        ] {
            assert!(schema.field_with_name(rerate_only).is_err());
        }
    }
}
