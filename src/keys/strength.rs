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

/// Well-known passphrases an attacker tries first (comics, quotes, manuals, type specimens),
/// lowercase letters and digits only: a passphrase that holds one, whatever its spacing, case
/// and punctuation, is estimated with the phrase as one dictionary word.
pub const KNOWN_PHRASES: &[&str] = &[
    "correcthorsebatterystaple",
    "thequickbrownfoxjumpsoverthelazydog",
    "loremipsumdolorsitamet",
    "tobeornottobethatisthequestion",
    "maytheforcebewithyou",
    "lukeiamyourfather",
    "allyourbasearebelongtous",
    "nevergonnagiveyouup",
    "nevergonnaletyoudown",
    "youshallnotpass",
    "winteriscoming",
    "thecakeisalie",
    "opensesame",
    "itsasecrettoeverybody",
    "theanswertolifetheuniverseandeverything",
    "sixbirdsflyingoverfourhills",
    "iamthewalrus",
    "hellotherehowareyou",
    "thisismypassword",
    "letmeinplease",
];

/// Keyboard layouts zxcvbn does not know (it knows QWERTY and Dvorak): for each, the keys of
/// its rows and, at the same places, QWERTY's. A walk typed on one of them becomes a QWERTY
/// walk, which zxcvbn recognises.
const LAYOUTS: &[(&str, &str)] = &[
    // AZERTY (French), unshifted rows: digits row, then the three letter rows.
    (
        "&é\"'(-è_çà)=azertyuiop^$qsdfghjklmù*wxcvbn,;:!",
        "1234567890-=qwertyuiop[]asdfghjkl;'\\zxcvbnm,./",
    ),
    // QWERTZ (German).
    (
        "ß´qwertzuiopü+asdfghjklöä#yxcvbnm,.-",
        "-=qwertyuiop[]asdfghjkl;'\\zxcvbnm,./",
    ),
    // Colemak.
    ("qwfpgjluy;arstdhneiozxcvbkm", "qwertyuiopasdfghjkl;zxcvbnm"),
];

/// zxcvbn's estimate of `p`, as (log10 guesses, the estimate).
fn zxcvbn_of(p: &str, context: &[&str]) -> (f64, zxcvbn::Entropy) {
    let e = zxcvbn::zxcvbn(p, context);
    (e.guesses_log10().max(0.0), e)
}

/// `p` lowercased, with everything but letters and digits removed. With `leet`, the digits and
/// symbols that stand for letters are read as those letters first (`0` o, `3` e, `4` and `@`
/// a, `5` and `$` s, `7` t; `1` and `!` stay `1`, which stands for `i` or `l`).
fn plain_letters(p: &str, leet: bool) -> String {
    p.chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            '0' if leet => Some('o'),
            '3' if leet => Some('e'),
            '4' | '@' if leet => Some('a'),
            '5' | '$' if leet => Some('s'),
            '7' if leet => Some('t'),
            '!' if leet => Some('1'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// `letters` with the first well-known phrase in it written out (a `1` reads as `i` or `l`),
/// if it holds one.
fn with_known_phrase(letters: &str) -> Option<String> {
    let have: Vec<char> = letters.chars().collect();
    KNOWN_PHRASES.iter().find_map(|k| {
        let want: Vec<char> = k.chars().collect();
        let at = have.windows(want.len()).position(|w| {
            w.iter()
                .zip(&want)
                .all(|(h, k)| h == k || (*h == '1' && matches!(k, 'i' | 'l')))
        })?;
        let mut out: String = have[..at].iter().collect();
        out.push_str(k);
        out.extend(&have[at + want.len()..]);
        Some(out)
    })
}

/// `p` with each character of a layout's rows replaced by the QWERTY key at its place.
fn as_qwerty(p: &str, from: &str, to: &str) -> String {
    p.chars()
        .map(|c| {
            let lower = c.to_lowercase().next().unwrap_or(c);
            from.chars()
                .position(|k| k == lower)
                .and_then(|i| to.chars().nth(i))
                .unwrap_or(c)
        })
        .collect()
}

/// Builds zxcvbn's dictionaries and patterns (built on first use, some 10 ms of CPU) on a
/// thread of its own, so that an [`estimate`] made later need not wait for them. `vault pack`
/// calls it before hashing its files.
pub fn warm_up() {
    let _ = std::thread::Builder::new()
        .name("zxcvbn-warm-up".into())
        .spawn(|| estimate("warm up", &KdfParams::DEFAULT, &[]));
}

/// Estimates `passphrase` against `kdf`. zxcvbn reads only the first 100 characters, which can
/// only underestimate a longer passphrase. `context` lists words the attacker may know (host
/// names): a passphrase built from them counts as weaker. What zxcvbn does not know is added:
/// [`KNOWN_PHRASES`], and keyboard walks on the [`LAYOUTS`] (each costs the attacker one more
/// try per layout); the lowest estimate wins.
pub fn estimate(passphrase: &str, kdf: &KdfParams, context: &[&str]) -> Estimate {
    let (mut guesses_log10, mut entropy) = zxcvbn_of(passphrase, context);
    let words: Vec<&str> = context
        .iter()
        .copied()
        .chain(KNOWN_PHRASES.iter().copied())
        .collect();
    // As written, then with l33t undone (`c0rrect h0rse` is the same phrase, and one more
    // try for the attacker).
    for leet in [false, true] {
        if let Some(letters) = with_known_phrase(&plain_letters(passphrase, leet)) {
            let (g, e) = zxcvbn_of(&letters, &words);
            let g = if leet { g + 1.0 } else { g };
            if g < guesses_log10 {
                (guesses_log10, entropy) = (g, e);
            }
        }
    }
    let layouts = (LAYOUTS.len() as f64).log10();
    for (from, to) in LAYOUTS {
        let mapped = as_qwerty(passphrase, from, to);
        if mapped == passphrase {
            continue;
        }
        let (g, e) = zxcvbn_of(&mapped, context);
        if g + layouts < guesses_log10 {
            (guesses_log10, entropy) = (g + layouts, e);
        }
    }
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

    /// Well-known phrases, however written, and keyboard walks on AZERTY, QWERTZ and Colemak,
    /// which zxcvbn alone puts above the threshold at the default settings.
    #[test]
    fn well_known_phrases_and_walks_on_other_layouts_are_weak() {
        for weak in [
            "correcthorsebatterystaple",
            "correct horse battery staple",
            "Correct-Horse-Battery-Staple!",
            "the quick brown fox jumps over the lazy dog",
            "Lorem ipsum dolor sit amet",
            "qwertzuiopasdfghjklyxcvbnm",
            "qayxswedcvfrtgbnhz",
            "aqwxszedcvfrtgbnhy",
            "arstdhneiozxcvkm",
            "qwfpgjluyarstdhneio",
        ] {
            let e = estimate(weak, &DEFAULT, &[]);
            assert!(e.too_weak(), "{weak:?}: 10^{:.1}", e.guesses_log10);
        }
        // Random words still pass, and the mapping does not make them weaker.
        for strong in [
            "plank sudden ozone mirth gravel tundra",
            "zorbulax quintessa marmalade vortex",
        ] {
            let e = estimate(strong, &DEFAULT, &[]);
            assert!(!e.too_weak(), "{strong:?}: 10^{:.1}", e.guesses_log10);
            let alone = zxcvbn::zxcvbn(strong, &[]).guesses_log10();
            assert!((e.guesses_log10 - alone).abs() < 0.5, "{strong:?}");
        }
        assert_eq!(as_qwerty("aqwzsx", LAYOUTS[0].0, LAYOUTS[0].1), "qazwsx");
        assert_eq!(as_qwerty("QWERTZ", LAYOUTS[1].0, LAYOUTS[1].1), "qwerty");
        assert_eq!(as_qwerty("arst", LAYOUTS[2].0, LAYOUTS[2].1), "asdf");
    }

    /// A well-known phrase in l33t spelling is as well known: zxcvbn alone rates these at its
    /// ceiling.
    #[test]
    fn leet_spellings_of_well_known_phrases_are_weak() {
        for weak in [
            "c0rrect h0rse b4ttery st4ple",
            "C0rr3ct-H0rs3-B4tt3ry-St4pl3!",
            "th3 qu1ck br0wn f0x jump5 0v3r th3 1azy d0g",
            "m4y th3 f0rc3 b3 w1th y0u",
            "$1x b1rd$ f1y1ng 0v3r f0ur h1ll$",
        ] {
            let e = estimate(weak, &DEFAULT, &[]);
            assert!(e.too_weak(), "{weak:?}: 10^{:.1}", e.guesses_log10);
        }
    }

    #[test]
    fn the_layout_tables_line_up() {
        for (from, to) in LAYOUTS {
            assert_eq!(from.chars().count(), to.chars().count(), "{from}");
        }
        for k in KNOWN_PHRASES {
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{k}"
            );
        }
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
