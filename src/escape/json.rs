//! How `--json` output is written: one document on one line, in printable ASCII only (every
//! other character as JSON's `\uXXXX`, so that a document shown on a terminal cannot act on
//! it), with the exact text of every string (JSON's escapes are not vault's [`super::escape`]:
//! a script gets the name as it is). A path that is not valid UTF-8 (Linux allows any bytes
//! but `/` and NUL in a name) is an array of its bytes as numbers, as journald's JSON writes
//! such fields: `[47, 105, 115, 111, 255]`; every other path is a string.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

/// A path as JSON: its text, or the array of its bytes when it is not UTF-8.
pub fn path(p: &Path) -> serde_json::Value {
    use std::os::unix::ffi::OsStrExt;
    match p.to_str() {
        Some(s) => serde_json::Value::String(s.to_owned()),
        None => p.as_os_str().as_bytes().iter().copied().collect(),
    }
}

/// A path, serialized as [`path`] (for `#[serde(serialize_with = …)]`).
pub fn serialize_path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    Json(p).serialize(s)
}

/// A list of paths, each as [`path`].
pub fn serialize_paths<S: Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|p| Json(p)))
}

/// An optional path, as [`path`] or `null`.
pub fn serialize_opt_path<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => Json(p).serialize(s),
        None => s.serialize_none(),
    }
}

struct Json<'a>(&'a Path);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use std::os::unix::ffi::OsStrExt;
        match self.0.to_str() {
            Some(text) => s.serialize_str(text),
            None => s.collect_seq(self.0.as_os_str().as_bytes()),
        }
    }
}

/// `value` as one line of printable-ASCII JSON (no trailing newline).
pub fn to_line<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Ascii);
    value.serialize(&mut ser)?;
    // Only ASCII was written.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// serde_json's compact format, with every character outside printable ASCII as `\uXXXX`
/// (UTF-16, a surrogate pair above U+FFFF). serde_json itself escapes `"`, `\` and C0.
struct Ascii;

impl serde_json::ser::Formatter for Ascii {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\x7f' {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{u:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn documents_are_printable_ascii_and_parse_back_to_the_exact_text() {
        let text = "a\x1b[2J\u{7f}\u{9b}é\u{202e}\u{1f600}\"\\\n";
        let line = to_line(&serde_json::json!({ "s": text })).unwrap();
        assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{line}");
        assert!(
            line.contains(r"\u00e9") && line.contains(r"\ud83d\ude00"),
            "{line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["s"], text);
    }

    #[test]
    fn a_path_that_is_not_utf8_is_its_bytes() {
        let odd = Path::new(OsStr::from_bytes(b"/iso/a\xffb"));
        assert_eq!(
            path(odd),
            serde_json::json!([47, 105, 115, 111, 47, 97, 255, 98])
        );
        assert_eq!(path(Path::new("/iso/é")), serde_json::json!("/iso/é"));
        #[derive(Serialize)]
        struct S {
            #[serde(serialize_with = "serialize_path")]
            p: PathBuf,
            #[serde(serialize_with = "serialize_paths")]
            v: Vec<PathBuf>,
            #[serde(serialize_with = "serialize_opt_path")]
            o: Option<PathBuf>,
        }
        let s = S {
            p: odd.into(),
            v: vec![odd.into(), "/x".into()],
            o: None,
        };
        assert_eq!(
            to_line(&s).unwrap(),
            r#"{"p":[47,105,115,111,47,97,255,98],"v":[[47,105,115,111,47,97,255,98],"/x"],"o":null}"#
        );
    }
}
