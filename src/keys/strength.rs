//! How long a bundle passphrase would resist offline guessing, given the bundle's Argon2id
//! parameters. `vault pack` prints the estimate and refuses a passphrase below
//! [`THRESHOLD_GPU_YEARS`] unless told to accept it.
//!
//! The model (docs/SECURITY.md, "Passphrase strength"):
//! - guesses: zxcvbn's estimate of how many guesses a pattern-aware attacker needs (its
//!   dictionaries, keyboard patterns, dates, l33t, repeats);
//! - cost of one guess: Argon2id is memory-hard, so a GPU attacker is bound by memory
//!   bandwidth. Each pass computes every 1 KiB block from two blocks it reads, and writes it:
//!   about 3 KiB of traffic per block per pass, `3 × m × t` bytes per guess, whatever the lanes;
//! - the reference attacker: GPUs with [`GPU_BANDWIDTH`] bytes/s of memory bandwidth each
//!   (RTX 4090 class), all of it spent on Argon2id. That overstates a real cracker's speed,
//!   which is the safe side to err on.
//!
//! Only numbers leave this module: neither the passphrase nor zxcvbn's matched fragments of it
//! are ever printed, only zxcvbn's fixed advice sentences.

use crate::bundle::KdfParams;

/// Memory bandwidth of one reference attacker GPU, in bytes per second (an RTX 4090 has
/// 1008 GB/s).
pub const GPU_BANDWIDTH: f64 = 1.0e12;

/// `vault pack` refuses a passphrase that the reference GPU would guess in less than this
/// many years (a year on 100 such GPUs), unless `--weak-passphrase` is given.
pub const THRESHOLD_GPU_YEARS: f64 = 100.0;

const SECONDS_PER_YEAR: f64 = 365.25 * 24.0 * 3600.0;

/// The estimate for one passphrase under one set of Argon2id parameters.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// log10 of zxcvbn's guess count (0 for an empty passphrase: one guess finds it).
    pub guesses_log10: f64,
    /// zxcvbn's score, 0 (too guessable) to 4 (very unguessable).
    pub score: u8,
    /// Memory traffic of one Argon2id derivation, bytes.
    pub bytes_per_guess: f64,
    /// Guesses per second on one reference GPU.
    pub guesses_per_gpu_second: f64,
    /// Time for one reference GPU to make zxcvbn's number of guesses, in years.
    pub gpu_years: f64,
    /// zxcvbn's advice (fixed sentences, never text from the passphrase).
    pub advice: Vec<String>,
}

/// Estimates `passphrase` against `kdf`. zxcvbn reads only the first 100 characters, which can
/// only underestimate a longer passphrase. `context` lists words the attacker may know (host
/// names): a passphrase built from them counts as weaker.
pub fn estimate(passphrase: &str, kdf: &KdfParams, context: &[&str]) -> Estimate {
    let entropy = zxcvbn::zxcvbn(passphrase, context);
    let guesses_log10 = entropy.guesses_log10().max(0.0);
    let advice = entropy
        .feedback()
        .map(|f| {
            f.warning()
                .map(|w| w.to_string())
                .into_iter()
                .chain(f.suggestions().iter().map(|s| s.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let bytes_per_guess = 3.0 * 1024.0 * f64::from(kdf.m_kib) * f64::from(kdf.t.max(1));
    let guesses_per_gpu_second = GPU_BANDWIDTH / bytes_per_guess;
    let gpu_years = 10f64.powf(guesses_log10) / guesses_per_gpu_second / SECONDS_PER_YEAR;
    Estimate {
        guesses_log10,
        score: u8::from(entropy.score()),
        bytes_per_guess,
        guesses_per_gpu_second,
        gpu_years,
        advice,
    }
}

impl Estimate {
    /// Below [`THRESHOLD_GPU_YEARS`].
    pub fn too_weak(&self) -> bool {
        self.gpu_years < THRESHOLD_GPU_YEARS
    }

    /// One line for the terminal: the guess count, the cost per guess, the total.
    pub fn summary(&self, kdf: &KdfParams) -> String {
        format!(
            "Passphrase strength: about 10^{:.1} guesses (zxcvbn score {}/4). Argon2id {} MiB, t={} moves about {} per guess: about {} guesses/s on one GPU with 1 TB/s of memory bandwidth, so guessing it would take about {} ({} on 100 GPUs).",
            self.guesses_log10,
            self.score,
            kdf.m_kib / 1024,
            kdf.t,
            human_bytes(self.bytes_per_guess),
            significant(self.guesses_per_gpu_second),
            gpu_time(self.gpu_years),
            duration(self.gpu_years / 100.0),
        )
    }

    /// The reason a passphrase is refused (or, accepted anyway, warned about).
    pub fn weakness(&self) -> String {
        let mut why = format!(
            "guessing it would take about {}, under the {} GPU-years vault requires",
            gpu_time(self.gpu_years),
            THRESHOLD_GPU_YEARS
        );
        if !self.advice.is_empty() {
            why.push_str(&format!(" (zxcvbn: {})", self.advice.join(" ")));
        }
        why
    }
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{} {}", significant(v), UNITS[i])
}

/// Two significant digits, in scientific notation past a million.
fn significant(v: f64) -> String {
    if !v.is_finite() || v >= 1e6 {
        format!("{v:.1e}")
    } else if v >= 10.0 {
        let unit = 10f64.powi(v.log10().floor() as i32 - 1);
        format!("{}", (v / unit).round() * unit)
    } else {
        format!("{v:.1}")
    }
}

fn gpu_time(years: f64) -> String {
    if years >= 1.0 {
        format!("{} GPU-years", significant(years))
    } else {
        format!("{} of one GPU", duration(years))
    }
}

/// A span of years, in the largest unit that keeps it at 1 or more.
fn duration(years: f64) -> String {
    let secs = years * SECONDS_PER_YEAR;
    let units: [(f64, &str); 5] = [
        (SECONDS_PER_YEAR, "years"),
        (86400.0, "days"),
        (3600.0, "hours"),
        (60.0, "minutes"),
        (1.0, "seconds"),
    ];
    for (size, name) in units {
        if secs >= size {
            return format!("{} {name}", significant(secs / size));
        }
    }
    "under a second".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: KdfParams = KdfParams::DEFAULT;

    #[test]
    fn common_passwords_are_weak_and_random_words_are_not() {
        for weak in ["", "password", "hunter2", "correct horse", "laptop2024"] {
            assert!(estimate(weak, &DEFAULT, &[]).too_weak(), "{weak:?}");
        }
        let strong = estimate("plank sudden ozone mirth gravel tundra", &DEFAULT, &[]);
        assert!(!strong.too_weak(), "{strong:?}");
    }

    #[test]
    fn host_names_count_against_the_passphrase() {
        let p = "zorbulax-quintessa";
        let alone = estimate(p, &DEFAULT, &[]);
        let known = estimate(p, &DEFAULT, &["zorbulax", "quintessa"]);
        assert!(known.guesses_log10 < alone.guesses_log10 - 3.0);
    }

    #[test]
    fn more_memory_or_passes_cost_the_attacker_proportionally_more() {
        let p = "a moderately long phrase";
        let base = estimate(p, &DEFAULT, &[]);
        let strong = estimate(p, &KdfParams::STRONG, &[]);
        let ratio = strong.gpu_years / base.gpu_years;
        let expected = KdfParams::STRONG.work() as f64 / DEFAULT.work() as f64;
        assert!((ratio - expected).abs() < 1e-9, "{ratio} != {expected}");
        // 3 × m × t bytes of memory traffic per guess: 1 GiB, 3 passes by default.
        assert_eq!(base.bytes_per_guess, 3.0 * 3.0 * 1024.0 * 1024.0 * 1024.0);
        assert!((base.guesses_per_gpu_second - 103.5).abs() < 0.1);
    }

    #[test]
    fn nothing_printed_contains_the_passphrase() {
        for p in [
            "hunter2hunter2",
            "Tr0ub4dor&3",
            "qwertyuiop",
            "aaaaaaaaaaaa",
        ] {
            let e = estimate(p, &DEFAULT, &[]);
            for text in [e.summary(&DEFAULT), e.weakness()] {
                assert!(!text.contains(p), "{text}");
                assert!(
                    !text.to_lowercase().contains(&p.to_lowercase()[..6]),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(2.0), "2.0 years");
        assert_eq!(duration(1.0 / 365.25 * 3.0), "3.0 days");
        assert_eq!(duration(1e-12), "under a second");
        assert_eq!(gpu_time(1.5e9), "1.5e9 GPU-years");
        assert_eq!(significant(414.2), "410");
        assert_eq!(significant(39736.0), "40000");
        assert_eq!(significant(15.0), "15");
    }
}
