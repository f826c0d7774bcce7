//! Printing names that came from a bundle, a medium or a repository: a target, a tar name, a
//! file name. A terminal acts on control characters (ESC starts a sequence that can retitle
//! the window, rewrite what is on screen or, on some terminals, answer back as if typed), so
//! every untrusted name goes through [`escape`] (or [`Escaped`]) before it is printed.
//!
//! Escaped: C0 and C1 control characters and DEL (`\x1b`, `\u{9b}`...), the Unicode bidi
//! controls that reorder what a line shows (`\u{202e}`...), and a backslash (so the escaped
//! form is unambiguous). Everything else, including non-ASCII text, is printed as it is.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with control characters written as `\n`, `\t`, `\x1b` or `\u{9b}`, and `\` as `\\`.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if needs_escape(c) && (c as u32) < 0x80 => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// Bytes that should be text (a tar name): valid UTF-8 is [`escape`]d, each invalid byte is
/// written `\xNN`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
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

/// Escapes a whole message for the terminal, keeping its line breaks: error messages are
/// built from untrusted names in many places, and this is the last line of defence.
pub fn escape_message(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && c != '\\' && needs_escape(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' | '\\' => out.push(c),
            c => push_escaped(&mut out, c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(escape("/etc/ssh/key"), "/etc/ssh/key");
        assert_eq!(escape("/etc/clé"), "/etc/clé");
        assert_eq!(
            escape("/x\x1b]0;owned\x07\u{9b}2J\u{202e}\\"),
            "/x\\x1b]0;owned\\x07\\u{9b}2J\\u{202e}\\\\"
        );
        assert_eq!(escape("a\nb\tc\rd\x7f"), "a\\nb\\tc\\rd\\x7f");
        assert_eq!(escape_bytes(b"a\xffb\x1b"), "a\\xffb\\x1b");
        assert_eq!(
            escape_message("line\n  /x\x1b[2J\\"),
            "line\n  /x\\x1b[2J\\"
        );
        assert_eq!(Escaped("\x07").to_string(), "\\x07");
    }
}
