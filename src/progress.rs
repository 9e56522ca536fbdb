//! Stages of a run: each gets a tracing span, a spinner on a terminal (silent when stderr is not
//! a terminal: schedulers and CI read the structured logs instead) and a timer in the log.

use std::future::Future;
use std::io::IsTerminal;
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
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
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
