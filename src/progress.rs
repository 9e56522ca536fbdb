//! Progress on a terminal: one spinner per long stage. Silent when stderr is not a terminal
//! (schedulers, CI), where the structured logs tell the same story.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    enabled: bool,
}

pub struct Step {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
        }
    }

    pub fn step(&self, message: &str) -> Step {
        let bar = self.enabled.then(|| {
            let bar = ProgressBar::new_spinner().with_message(message.to_string());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("static template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Step { bar }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Step {
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
