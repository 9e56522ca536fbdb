//! Command-line interface: verbs as subcommands, doc comments as help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::books::close::CloseOptions;
use crate::period::Period;
use crate::run::RunOptions;

/// Re-rate AWS Cost and Usage Reports: billable and pro forma data, margins, invoices.
#[derive(Debug, Parser)]
#[command(name = "rerate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Re-rate every selected billing period and write the outputs.
    Run {
        #[command(flatten)]
        options: RunOptions,
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Issue the invoices of a period's last run: drafts become issued invoices, never to
    /// change; later corrections are credit notes (`rerate run --correct`).
    Close {
        #[command(flatten)]
        options: CloseOptions,
        /// Print what was issued as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check the config and the input's schema; writes nothing.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        input: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show how one line item is assigned, ruled and priced, and why.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        input: Option<String>,
        /// The identity_line_item_id to explain.
        #[arg(long)]
        line_item_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Write realistic synthetic CUR 2.0 Parquet in the AWS Data Exports layout.
    Sample {
        /// Where to write (s3://…, file://… or a local path).
        #[arg(long)]
        output: String,
        /// Rows per billing period.
        #[arg(long, default_value_t = 10_000)]
        rows: u64,
        /// Random seed: the same seed writes the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Billing period (YYYY-MM); repeatable. Default: 2025-11.
        #[arg(long = "period")]
        periods: Vec<Period>,
        /// Rows per Parquet file.
        #[arg(long, default_value_t = 1_000_000)]
        rows_per_file: u64,
    },
    /// Serve as part of a Ballista cluster that `rerate run --cluster df://host:port` runs on.
    #[cfg(feature = "cluster")]
    Cluster {
        #[command(subcommand)]
        role: ClusterRole,
    },
}

#[cfg(feature = "cluster")]
#[derive(Debug, Subcommand)]
pub enum ClusterRole {
    /// Ballista's scheduler: plans the jobs drivers send and hands their tasks to executors.
    Scheduler {
        /// Where to serve drivers and executors.
        #[arg(long, default_value = "0.0.0.0:50050")]
        bind: std::net::SocketAddr,
    },
    /// Ballista's executor: runs tasks, reading the input and writing the output's files.
    Executor(crate::cluster::ExecutorOptions),
}
