//! Progress bars on stderr for the [`Progress`] trait; hidden when stderr is not a terminal
//! or when asked to be quiet, so pipes and logs stay clean.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kefu_progress::{Progress, Unit};

pub struct BarProgress {
    hidden: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl BarProgress {
    pub fn new(quiet: bool) -> Self {
        BarProgress {
            hidden: quiet || !std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }
}

impl Progress for BarProgress {
    fn start(&self, phase: &str, total: Option<u64>, unit: Unit) {
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        let counts = match unit {
            Unit::Bytes => "{bytes}/{total_bytes} ({bytes_per_sec}, {eta})".to_string(),
            Unit::Items(name) => format!("{{pos}}/{{len}} {name} ({{per_sec}}, {{eta}})"),
        };
        let template = format!("{{prefix:>12.bold}} [{{bar:30}}] {counts} {{msg}}");
        bar.set_style(
            ProgressStyle::with_template(&template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_string());
        bar.set_draw_target(if self.hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        *self.bar.lock().expect("progress lock") = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = &*self.bar.lock().expect("progress lock") {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }

    fn message(&self, message: &str) {
        if let Some(bar) = &*self.bar.lock().expect("progress lock") {
            bar.set_message(message.to_string());
        }
    }
}
