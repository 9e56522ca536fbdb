//! The `rerate` binary: parse arguments, start logging, call the library, map the outcome to an
//! exit code (0 ok, 1 input or config to fix, 2 environment: retry).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use cur_sample::{SampleOptions, write_sample};
#[cfg(feature = "cluster")]
use rerate::cli::ClusterRole;
use rerate::cli::{Cli, Command};
use rerate::config::StorageSettings;
use rerate::storage::Location;
use rerate::write::manifest::RunManifest;
use rerate::{Error, Result, error_chain, explain, run, validate};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    keep_memory_returned();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("rerate=info,warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and succeed; a bad flag is the user's to fix (exit 1),
        // not an environment failure worth retrying (clap's own code would be 2).
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Run { options, json } => {
            let (manifest, result) = run::execute(&options).await;
            match (&manifest, &result) {
                (Some(manifest), _) if json => print_json(manifest)?,
                // The run failed before it had a manifest (the config, a location).
                (None, Err(e)) if json => print_json(&serde_json::json!({
                    "status": "failed",
                    "error": error_chain(e),
                }))?,
                (Some(manifest), Ok(())) => print_totals(manifest),
                _ => {}
            }
            result?;
        }
        Command::Close { options, json } => {
            let summary = match rerate::books::close::close(&options).await {
                Ok(summary) => summary,
                Err(e) => {
                    if json {
                        print_json(&serde_json::json!({
                            "status": "failed",
                            "error": error_chain(&e),
                        }))?;
                    }
                    return Err(e);
                }
            };
            if json {
                print_json(&summary)?;
            } else {
                for d in &summary.issued {
                    eprintln!(
                        "issued {} to {}: {} {} ({})",
                        d.number, d.billing_group, d.currency, d.total, d.json
                    );
                }
                for g in &summary.already_closed {
                    eprintln!("{g}: {} was closed already", summary.period);
                }
                if !summary.open.is_empty() {
                    eprintln!(
                        "still open in {}: {}",
                        summary.period,
                        summary.open.join(", ")
                    );
                }
            }
        }
        #[cfg(feature = "cluster")]
        Command::Cluster { role } => match role {
            ClusterRole::Scheduler { bind } => rerate::cluster::scheduler(bind).await?,
            ClusterRole::Executor(options) => rerate::cluster::executor(&options).await?,
        },
        Command::Validate {
            config,
            input,
            json,
        } => {
            let summary = validate::validate(&config, input.as_deref()).await?;
            if json {
                print_json(&summary)?;
            } else {
                eprintln!("config ok: {} billing groups", summary.billing_groups.len());
                if let Some(input) = &summary.input {
                    eprintln!("input ok: {} files under {input}", summary.files);
                    print_ignored(&summary.ignored);
                    for (period, rows) in &summary.periods {
                        eprintln!("  {period}: {rows} rows");
                    }
                }
            }
        }
        Command::Explain {
            config,
            input,
            line_item_id,
            json,
        } => {
            let rows = explain::explain(&config, input.as_deref(), &line_item_id).await?;
            if json {
                print_json(&rows)?;
            } else {
                let mut out = std::io::stdout().lock();
                for r in &rows {
                    writeln!(out, "{}", r.narrative()).map_err(Error::io("stdout"))?;
                }
            }
        }
        Command::Sample {
            output,
            rows,
            seed,
            periods,
            rows_per_file,
        } => {
            let location = Location::parse(&output, &StorageSettings::default())?;
            let periods = if periods.is_empty() {
                SampleOptions::default().periods
            } else {
                periods
            };
            let opts = SampleOptions {
                rows,
                seed,
                periods,
                rows_per_file,
            };
            let summary = write_sample(location.store.clone(), &location.prefix, &opts).await?;
            eprintln!(
                "wrote {} rows in {} files under {location} (unblended total {} USD)",
                summary.rows,
                summary.files.len(),
                summary.unblended_total
            );
        }
    }
    Ok(())
}

/// The input files a manifest leaves out, one line each.
fn print_ignored(ignored: &[rerate::ingest::delivery::IgnoredFile]) {
    for f in ignored {
        eprintln!("ignored {}: {}", f.url, f.reason);
    }
}

/// One line per period and where the outputs are, for a person at a terminal.
fn print_totals(manifest: &RunManifest) {
    print_ignored(&manifest.input.ignored);
    for p in &manifest.periods {
        // Totals are in the bill currency; payers billed in several add up as written.
        let currency = match p
            .input_cost_by_currency
            .keys()
            .collect::<Vec<_>>()
            .as_slice()
        {
            [one] => one.to_string(),
            _ => "(several bill currencies)".to_string(),
        };
        eprintln!(
            "{}: {} rows, billable {} {currency}, pro forma {} {currency}, {} groups, {} rows \
             unassigned",
            p.period,
            p.input_rows,
            p.control.billable_total.round_dp(2),
            p.control.proforma_total.round_dp(2),
            p.groups
                .iter()
                .filter(|g| g.billing_group != rerate::config::UNASSIGNED)
                .count(),
            p.unassigned.rows,
        );
    }
    eprintln!("outputs in {} (run {})", manifest.output, manifest.run_id);
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| Error::io("stdout")(e.into()))?;
    writeln!(out).map_err(Error::io("stdout"))?;
    Ok(())
}

/// Gives memory the allocator holds free back to the system. glibc keeps what is freed in its
/// heaps for reuse, and the pass frees in a pattern its heaps cannot shrink from: at 10M rows,
/// RSS climbed to 1.06–1.10 GiB with a heap that peaked at 0.7 GiB. So large buffers (a page, a
/// row group, an upload's part: 4 MiB and up) are mapped apart and unmapped when freed (glibc
/// otherwise raises that threshold as such buffers come and go; lower than 4 MiB, the system
/// calls cost seconds), and once a second a thread returns the free pages of the heaps
/// (`malloc_trim`): peak RSS 0.89 GiB at 10M, for about 2 s more system time at 3M.
fn keep_memory_returned() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a parameter of glibc's allocator; called first thing in
        // main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        }
        let trim = std::thread::Builder::new()
            .name("rerate-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    // SAFETY: malloc_trim only releases free memory; glibc locks each heap it
                    // walks, so it is safe beside other threads' allocations.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            });
        // If the thread cannot start, the run goes on, with memory returned as glibc does.
        drop(trim);
    }
}
