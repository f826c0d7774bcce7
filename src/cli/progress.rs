//! Progress bars on stderr, shared by `pack`, `unlock` and `rekey`.
//!
//! A bar is drawn only when stderr is a terminal, `--quiet` was not given, and the work has
//! already taken longer than [`DELAY`]: a bundle of a few keys finishes without any flicker,
//! and scripts (stderr a pipe or a file) see nothing. A bar's clock starts at its first
//! progress, not when it is made: `pack` makes its bar before the key derivation, which must
//! count neither towards the delay nor into the rate and ETA. The bar is cloneable and
//! `Send`, so a worker thread can advance it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work runs before a bar appears.
pub const DELAY: Duration = Duration::from_millis(400);

/// [`DELAY`], or `VAULT_PROGRESS_DELAY_MS` when set: the pty tests set 0, so that whether a
/// bar is drawn does not depend on how fast the machine is.
fn delay() -> Duration {
    static D: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *D.get_or_init(|| {
        std::env::var("VAULT_PROGRESS_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(DELAY)
    })
}

/// What a bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Files, secrets, items: plain counts.
    Items,
}

/// A progress bar that may never be drawn. Cheap to clone; every clone drives the same bar.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Bars: the first `inc`. Spinners: when made.
    start: Arc<OnceLock<Instant>>,
    shown: Arc<AtomicBool>,
}

impl Progress {
    /// A bar for `total` units labelled `label` (e.g. "packing"); inert when `quiet` or when
    /// stderr is not a terminal.
    pub fn new(total: u64, unit: Unit, label: &str, quiet: bool) -> Progress {
        let enabled = !quiet && std::io::stderr().is_terminal();
        Progress::with_enabled(total, unit, label, enabled)
    }

    /// A spinner with the elapsed time, for work whose size is not known up front (unlock
    /// learns it only inside the encrypted bundle). Appears after [`DELAY`] like a bar.
    pub fn spinner(label: &str, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
            .with_style(style)
            .with_message(label.to_owned());
        let p = Progress {
            bar: Some(bar.clone()),
            start: Arc::new(OnceLock::from(Instant::now())),
            shown: Arc::new(AtomicBool::new(false)),
        };
        // Nothing calls `inc`: a timer shows it once the work outlasts DELAY.
        let shown = Arc::downgrade(&p.shown);
        std::thread::spawn(move || {
            std::thread::sleep(delay());
            if let Some(flag) = shown.upgrade() {
                if !bar.is_finished() && !flag.swap(true, Ordering::Relaxed) {
                    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
                    bar.enable_steady_tick(Duration::from_millis(120));
                }
            }
        });
        p
    }

    /// A bar that never draws.
    pub fn hidden() -> Progress {
        Progress {
            bar: None,
            start: Arc::new(OnceLock::new()),
            shown: Arc::new(AtomicBool::new(false)),
        }
    }

    fn with_enabled(total: u64, unit: Unit, label: &str, enabled: bool) -> Progress {
        if !enabled {
            return Progress::hidden();
        }
        let template = match unit {
            Unit::Bytes => {
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
            }
            Unit::Items => "{msg:>10} [{bar:30}] {pos}/{len} ({per_sec}) ETA {eta}",
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        // Hidden at first: drawn only once the work proves longer than DELAY.
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
            .with_style(style)
            .with_message(label.to_owned());
        Progress {
            bar: Some(bar),
            start: Arc::new(OnceLock::new()),
            shown: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Advances by `n` units.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            // Switched on first, so this very `inc` draws: a bundle of one large file may
            // call it only a few times.
            self.show_if_slow(bar);
            bar.inc(n);
        }
    }

    /// Removes the bar, so the command's own output starts on a clean line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// `inc` as a callback, for library functions that report progress through `&dyn Fn(u64)`.
    pub fn callback(&self) -> impl Fn(u64) + Send + Sync + '_ {
        move |n| self.inc(n)
    }

    fn show_if_slow(&self, bar: &ProgressBar) {
        let start = self.start.get_or_init(|| {
            // The work starts now: rate and ETA count from here.
            bar.reset_elapsed();
            bar.reset_eta();
            Instant::now()
        });
        if !self.shown.load(Ordering::Relaxed)
            && start.elapsed() >= delay()
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Only the last clone clears the bar: an error message must not land mid-bar.
        if Arc::strong_count(&self.shown) == 1 {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_and_hidden_bars_count_nothing_and_never_draw() {
        let p = Progress::new(10, Unit::Items, "x", true);
        assert!(p.bar.is_none());
        p.inc(3);
        p.finish();
        let p = Progress::with_enabled(10, Unit::Bytes, "x", true);
        let q = p.clone();
        q.inc(4);
        assert_eq!(p.bar.as_ref().map(|b| b.position()), Some(4));
        // Fast work never switches the bar on.
        assert!(!p.shown.load(Ordering::Relaxed));
    }

    #[test]
    fn a_bar_counts_time_from_its_first_progress() {
        let made = Instant::now();
        let p = Progress::with_enabled(10, Unit::Bytes, "x", true);
        assert!(p.start.get().is_none());
        // What pack does between making the bar and the first byte: the key derivation.
        std::thread::sleep(Duration::from_millis(50));
        p.inc(1);
        let first = *p.start.get().expect("set by the first inc");
        assert!(first >= made + Duration::from_millis(50));
        let bar = p.bar.as_ref().unwrap();
        assert!(bar.elapsed() < made.elapsed() - Duration::from_millis(49));
    }
}
