//! Printing text that came from a bundle, a medium, a device or a repository: a target, a tar
//! name, a file name, a version string, a model name. A terminal acts on control characters
//! (ESC starts a sequence that can retitle the window, rewrite what is on screen or, on some
//! terminals, answer back as if typed), and invisible characters make two different names
//! look the same, so every such string goes through [`escape`] before it is printed: through
//! the [`Untrusted`] type that library values carry it in (its `Display` escapes), or
//! [`escape_path`], [`escape_bytes`], [`Escaped`], which all call it.
//!
//! Escaped ([`needs_escape`]): control characters (C0, C1, DEL), format characters (bidi
//! controls such as U+202E and U+061C, zero-width characters, the BOM, tag characters), line
//! and paragraph separators (U+2028, U+2029), characters that draw nothing (the Hangul fillers
//! U+115F, U+1160, U+3164, U+FFA0, the Braille blank, variation selectors), spaces other than
//! U+0020, and a backslash that could be read as the start of one of those escapes (followed by
//! `\\`, `n`, `t`, `r`, `x`, `u` or `…`, or last), so that the escaped form is unambiguous while
//! a regex such as `^secrets/[^/]+\.yaml$` stays as it is. Everything else, including other
//! non-ASCII text, is printed as it is.
//!
//! Bounded: at most [`MAX_SHOWN`] characters of one string are printed; a longer one ends in
//! `\…[N more bytes]`. A backslash before `…` in the text is written `\\`, so a string cannot
//! forge that marker.

pub mod json;

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::path::Path;

/// The most characters of one untrusted string that are printed (after escaping).
pub const MAX_SHOWN: usize = 512;

/// The most characters of one error message that are printed (messages quote several names,
/// each bounded by [`MAX_SHOWN`]; this bounds the whole).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Format characters (Unicode general category Cf), line and paragraph separators, and the
/// characters that are default-ignorable or draw nothing although they are not Cf.
const INVISIBLE: &[(u32, u32)] = &[
    (0x00A0, 0x00A0), // no-break space
    (0x00AD, 0x00AD), // soft hyphen
    (0x034F, 0x034F), // combining grapheme joiner
    (0x0600, 0x0605),
    (0x061C, 0x061C), // Arabic letter mark
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160), // Hangul choseong / jungseong fillers
    (0x1680, 0x1680), // Ogham space mark
    (0x17B4, 0x17B5),
    (0x180B, 0x180F), // Mongolian variation selectors and vowel separator
    (0x2000, 0x200F), // spaces, zero-width space/joiners, LRM, RLM
    (0x2028, 0x202F), // line/paragraph separators, bidi embeddings, narrow no-break space
    (0x205F, 0x206F), // medium space, word joiner, invisible operators, bidi isolates
    (0x2800, 0x2800), // Braille pattern blank
    (0x3000, 0x3000), // ideographic space
    (0x3164, 0x3164), // Hangul filler
    (0xFE00, 0xFE0F), // variation selectors
    (0xFEFF, 0xFEFF), // BOM, zero-width no-break space
    (0xFFA0, 0xFFA0), // halfwidth Hangul filler
    (0xFFF0, 0xFFFB), // unassigned specials, interlinear annotation
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF), // tags, variation selectors supplement, reserved ignorables
];

/// Whether `c` is written escaped.
pub fn needs_escape(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control() || c == '\\';
    }
    let n = c as u32;
    c.is_control()
        || INVISIBLE
            .binary_search_by(|&(lo, hi)| {
                if hi < n {
                    std::cmp::Ordering::Less
                } else if lo > n {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// Writes `b` escaped into `out`: valid UTF-8 as [`push_escaped`], each invalid byte as
/// `\xNN`; at most `limit` characters, then the truncation marker. `keep_newlines` leaves `\n`
/// and the backslash as they are, for whole messages.
fn push_bounded(out: &mut String, b: &[u8], limit: usize, keep_newlines: bool) {
    let mut shown = 0;
    let mut at = 0;
    // Appends what was pushed since `before` if it fits; else the marker, and false.
    let mut fits = |out: &mut String, before: usize, at: usize| {
        shown += out[before..].chars().count();
        if shown <= limit {
            return true;
        }
        out.truncate(before);
        let _ = write!(out, "\\…[{} more bytes]", b.len() - at);
        false
    };
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            let before = out.len();
            match c {
                '\n' | '\\' if keep_newlines => out.push(c),
                '\\' if !reads_as_escape(&b[at + 1..]) => out.push(c),
                c => push_escaped(out, c),
            }
            if !fits(out, before, at) {
                return;
            }
            at += c.len_utf8();
        }
        for byte in chunk.invalid() {
            let before = out.len();
            let _ = write!(out, "\\x{byte:02x}");
            if !fits(out, before, at) {
                return;
            }
            at += 1;
        }
    }
}

/// Whether a backslash followed by `rest` could be read as one of the escapes this module
/// writes (`\\`, `\n`, `\t`, `\r`, `\xNN`, `\u{…}`, the `\…` of the truncation marker), or
/// is the last character shown: only such a backslash is doubled, so `^a\.b$` stays readable
/// while `\x1b` typed as text can never pass for an escaped ESC.
fn reads_as_escape(rest: &[u8]) -> bool {
    let Some(chunk) = rest[..rest.len().min(4)].utf8_chunks().next() else {
        return true;
    };
    match chunk.valid().chars().next() {
        Some(c) => matches!(c, '\\' | 'n' | 't' | 'r' | 'x' | 'u' | '…'),
        None => true,
    }
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if needs_escape(c) && (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `s` with control and invisible characters written as `\n`, `\t`, `\x1b` or `\u{202e}`, a
/// backslash that would read as an escape as `\\`, and cut after [`MAX_SHOWN`] characters. The one function every untrusted string
/// goes through before it is printed.
pub fn escape(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_SHOWN && !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(MAX_SHOWN) + 16);
    push_bounded(&mut out, s.as_bytes(), MAX_SHOWN, false);
    Cow::Owned(out)
}

/// Bytes that should be text (a tar name, a file name): valid UTF-8 is [`escape`]d, each
/// invalid byte is written `\xNN`; bounded as [`escape`].
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().min(MAX_SHOWN) + 16);
    push_bounded(&mut out, b, MAX_SHOWN, false);
    out
}

/// A path, escaped as [`escape_bytes`].
pub fn escape_path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    escape_bytes(p.as_os_str().as_bytes())
}

/// Displays a string escaped: `format!("{}", Escaped(name))`.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

/// Escapes a whole message for the terminal, keeping its line breaks, and bounds it to
/// [`MAX_MESSAGE`] characters: error messages are built from untrusted names in many
/// places, and this is the last line of defence.
pub fn escape_message(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_MESSAGE && !s.chars().any(|c| c != '\n' && c != '\\' && needs_escape(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(MAX_MESSAGE) + 16);
    push_bounded(&mut out, s.as_bytes(), MAX_MESSAGE, true);
    Cow::Owned(out)
}

/// Text from outside vault's control: a bundle, a medium, a device, a repository. Its
/// `Display` is [`escape`]d and bounded, and it has no other way to be formatted, so printing
/// it raw takes an explicit [`Untrusted::as_raw`]. Serialized (`--json`) and compared as the
/// exact text.
#[derive(
    Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Untrusted(String);

impl Untrusted {
    pub fn new(s: impl Into<String>) -> Untrusted {
        Untrusted(s.into())
    }

    /// The exact text, for comparing, parsing or serializing; never for printing.
    pub fn as_raw(&self) -> &str {
        &self.0
    }

    pub fn into_raw(self) -> String {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Untrusted {
    fn from(s: String) -> Untrusted {
        Untrusted(s)
    }
}

impl From<&str> for Untrusted {
    fn from(s: &str) -> Untrusted {
        Untrusted(s.to_owned())
    }
}

impl PartialEq<str> for Untrusted {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Untrusted {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(&self.0))
    }
}

impl fmt::Debug for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", escape(&self.0))
    }
}

#[cfg(test)]
mod tests;
