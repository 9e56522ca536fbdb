//! Stages of a run: each gets a tracing span, on a terminal a progress bar (bytes of the input
//! read of the period's total, for the stages that scan it) or a spinner (silent when stderr is
//! not a terminal: schedulers and CI read the structured logs instead), and a timer in the log.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tracing::{Instrument, info, info_span};

pub(crate) struct Progress {
    enabled: bool,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Runs `work` as the stage `name`: in its span, behind its spinner, logged with its time.
    pub(crate) async fn stage<T, E>(
        &self,
        name: &str,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let bar = self.enabled.then(|| {
            let bar = ProgressBar::new_spinner().with_message(name.to_string());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("static template"),
            );
            bar
        });
        self.run(name, bar, work).await
    }

    /// Runs `work`, which scans the input, as the stage `name` behind a bar of the bytes it
    /// reads (`read` counts every read of the input) of `total`.
    pub(crate) async fn stage_reading<T, E>(
        &self,
        name: &str,
        total: u64,
        read: &Arc<AtomicU64>,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let bar = self.enabled.then(|| {
            let bar = ProgressBar::new(total).with_message(name.to_string());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} of the input read, {elapsed}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar
        });
        self.watched(name, bar, read, Some(total), work).await
    }

    /// Runs `work`, which writes a table, as the stage `name` behind a spinner with the bytes
    /// written below the output so far (`written`), which it cannot know the total of.
    pub(crate) async fn stage_writing<T, E>(
        &self,
        name: &str,
        written: &Arc<AtomicU64>,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let bar = self.enabled.then(|| {
            let bar = ProgressBar::new_spinner().with_message(name.to_string());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}: {bytes} written, {elapsed}")
                    .expect("static template"),
            );
            bar
        });
        self.watched(name, bar, written, None, work).await
    }

    /// Runs `work` with `bar` following `counter` (from its value now, capped at `total`).
    async fn watched<T, E>(
        &self,
        name: &str,
        bar: Option<ProgressBar>,
        counter: &Arc<AtomicU64>,
        total: Option<u64>,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let Some(bar) = bar else {
            return self.run(name, None, work).await;
        };
        // Counters run for the whole session: this stage's bytes are those since it started.
        let start = counter.load(Ordering::Relaxed);
        let (watched, counter) = (bar.clone(), counter.clone());
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(150));
            loop {
                every.tick().await;
                let n = counter.load(Ordering::Relaxed).saturating_sub(start);
                watched.set_position(total.map_or(n, |t| n.min(t)));
            }
        });
        let result = self.run(name, Some(bar), work).await;
        ticker.abort();
        result
    }

    async fn run<T, E>(
        &self,
        name: &str,
        bar: Option<ProgressBar>,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        if let Some(bar) = &bar {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        let clock = Instant::now();
        let result = work.instrument(info_span!("stage", stage = name)).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if result.is_ok() {
            info!(stage = name, ms = clock.elapsed().as_millis(), "done");
        }
        result
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
