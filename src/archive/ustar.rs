//! A strict reader for the tar subset a bundle may hold (docs/FORMAT.md §4): ustar or GNU
//! headers, regular files (type `0`) and directories (`5`), names lengthened by one GNU
//! long-name (`L`) or PAX (`x`) entry of at most [`MAX_META_BYTES`], and the end-of-archive
//! marker. Everything else is returned as a header for the caller to refuse, or refused here.
//!
//! vault has its own reader, not the `tar` crate's, so that every rule is one it states: the
//! crate reads long names and PAX records whole (whatever size they declare), accepts
//! pre-POSIX headers, malformed PAX records and archives without an end marker.

use std::io::{self, Read};

use crate::escape::escape_bytes;

pub const BLOCK: usize = 512;
/// Most data bytes in one GNU long-name or PAX entry: room for the longest name an item can
/// have (a 63-byte host, `/root`, a 4095-byte target, `/`), with PAX record overhead, twice.
pub const MAX_META_BYTES: u64 = 8 << 10;

/// PAX keys read and ignored (informational, like the header fields they override).
const PAX_IGNORED: &[&str] = &["mtime", "atime", "ctime", "uid", "gid", "uname", "gname"];

/// A header a bundle entry starts with, after its long name and PAX records were applied.
#[derive(Debug)]
pub struct Header {
    /// The entry's name (from the PAX `path`, the GNU long name or the header).
    pub name: Vec<u8>,
    /// The type flag byte, e.g. `b'0'`.
    pub kind: u8,
    /// Bytes of data (the header's size; a PAX `size` must agree with it).
    pub size: u64,
    /// Offset of the header in the tar stream, for messages.
    pub offset: u64,
}

/// Why reading failed: the stream's own error, or a rule of the format.
#[derive(Debug)]
pub enum TarError {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        TarError::Io(e)
    }
}

type Result<T> = std::result::Result<T, TarError>;

/// What a type flag means, for messages.
pub fn kind_name(kind: u8) -> String {
    match kind {
        b'0' => "regular file".into(),
        b'5' => "directory".into(),
        b'1' => "hard link".into(),
        b'2' => "symbolic link".into(),
        b'3' => "character device".into(),
        b'4' => "block device".into(),
        b'6' => "FIFO".into(),
        b'7' => "contiguous file".into(),
        b'S' => "GNU sparse file".into(),
        b'K' => "GNU long link name".into(),
        b'g' => "PAX global header".into(),
        b'V' => "volume label".into(),
        0 => "pre-POSIX regular file (type NUL)".into(),
        other => format!("entry of type {}", escape_bytes(&[other])),
    }
}

/// Reads tar entries from `inner`, one [`TarReader::next_entry`] at a time.
pub struct TarReader<R> {
    inner: R,
    /// Bytes read from `inner` so far.
    offset: u64,
    /// Data bytes of the current entry not yet read, and the padding after them.
    remaining: u64,
    padding: u64,
    ended: bool,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
            ended: false,
        }
    }

    /// The stream after the end-of-archive marker (or wherever reading stopped).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Fills `buf` or reports how much the stream held before it ended.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.offset += filled as u64;
        Ok(filled)
    }

    /// Skips what is left of the current entry; its padding must be zeros.
    fn finish_entry(&mut self) -> Result<()> {
        let mut buf = [0u8; BLOCK];
        while self.remaining > 0 {
            let want = self.remaining.min(BLOCK as u64) as usize;
            let n = self.fill(&mut buf[..want])?;
            if n < want {
                return Err(ends_inside());
            }
            self.remaining -= n as u64;
        }
        if self.padding > 0 {
            let want = self.padding as usize;
            let at = self.offset;
            if self.fill(&mut buf[..want])? < want {
                return Err(ends_inside());
            }
            self.padding = 0;
            if buf[..want].iter().any(|&b| b != 0) {
                return Err(TarError::Bad(format!(
                    "the padding at offset {at} holds non-zero bytes"
                )));
            }
        }
        Ok(())
    }

    /// One whole block, `None` if the stream ended exactly before it.
    fn block(&mut self) -> Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        match self.fill(&mut b)? {
            0 => Ok(None),
            BLOCK => Ok(Some(b)),
            _ => Err(TarError::Bad(
                "the archive ends inside a 512-byte block".into(),
            )),
        }
    }

    /// Reads the data of a metadata entry (long name or PAX), bounded before it is read.
    fn meta_data(&mut self, what: &str, size: u64, at: u64) -> Result<Vec<u8>> {
        if size > MAX_META_BYTES {
            return Err(TarError::Bad(format!(
                "the {what} at offset {at} is {size} bytes (at most {MAX_META_BYTES} allowed)"
            )));
        }
        let mut data = vec![0u8; size as usize];
        if self.fill(&mut data)? < data.len() {
            return Err(ends_inside());
        }
        self.padding = padding(size);
        self.finish_entry()?;
        Ok(data)
    }

    /// The next entry's header, or `None` after the end-of-archive marker (two zero blocks).
    /// Any data of the previous entry not read is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Header>> {
        if self.ended {
            return Ok(None);
        }
        self.finish_entry()?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut pax: Option<Pax> = None;
        loop {
            let at = self.offset;
            let Some(b) = self.block()? else {
                return Err(TarError::Bad(
                    "the archive ends without its end-of-archive marker (two zero blocks)".into(),
                ));
            };
            if b.iter().all(|&x| x == 0) {
                match self.block()? {
                    Some(b2) if b2.iter().all(|&x| x == 0) => {}
                    Some(_) => {
                        return Err(TarError::Bad(format!(
                            "a single zero block at offset {at} is followed by more entries"
                        )))
                    }
                    None => {
                        return Err(TarError::Bad(format!(
                            "the archive ends after one zero block at offset {at}; the end-of-archive marker is two"
                        )))
                    }
                }
                if long_name.is_some() || pax.is_some() {
                    return Err(TarError::Bad(
                        "a long-name or PAX entry is the last entry of the archive".into(),
                    ));
                }
                self.ended = true;
                return Ok(None);
            }
            let h = RawHeader::check(&b, at)?;
            match h.kind {
                b'L' => {
                    if long_name.is_some() {
                        return Err(TarError::Bad(format!(
                            "two GNU long names in a row (offset {at})"
                        )));
                    }
                    let mut name = self.meta_data("GNU long name", h.size, at)?;
                    // Written NUL-terminated; nothing may follow the NUL.
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    if name.contains(&0) {
                        return Err(TarError::Bad(format!(
                            "the GNU long name at offset {at} holds a NUL byte"
                        )));
                    }
                    long_name = Some(name);
                }
                b'x' => {
                    if pax.is_some() {
                        return Err(TarError::Bad(format!(
                            "two PAX headers in a row (offset {at})"
                        )));
                    }
                    let data = self.meta_data("PAX header", h.size, at)?;
                    pax = Some(Pax::parse(&data, at)?);
                }
                kind => {
                    let mut name = h.name;
                    let has_long_name = long_name.is_some();
                    if let Some(n) = long_name {
                        name = n;
                    }
                    if let Some(p) = pax {
                        if let Some(path) = p.path {
                            if has_long_name {
                                return Err(TarError::Bad(format!(
                                    "the entry at offset {at} has both a GNU long name and a PAX path"
                                )));
                            }
                            name = path;
                        }
                        if let Some(size) = p.size {
                            if size != h.size {
                                return Err(TarError::Bad(format!(
                                    "the PAX size record ({size}) of the entry at offset {at} differs from its header's size ({})",
                                    h.size
                                )));
                            }
                        }
                    }
                    self.remaining = h.size;
                    self.padding = padding(h.size);
                    return Ok(Some(Header {
                        name,
                        kind,
                        size: h.size,
                        offset: at,
                    }));
                }
            }
        }
    }
}

fn ends_inside() -> TarError {
    TarError::Bad("the archive ends inside an entry".into())
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The data of the current entry: at most its size; the stream ending early is an error.
impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            ));
        }
        self.offset += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The fields of one header block vault reads.
struct RawHeader {
    name: Vec<u8>,
    kind: u8,
    size: u64,
}

impl RawHeader {
    fn check(b: &[u8; BLOCK], at: u64) -> Result<RawHeader> {
        let bad = |why: &str| TarError::Bad(format!("the tar header at offset {at} {why}"));
        let stored = octal(&b[148..156]).ok_or_else(|| bad("has an unreadable checksum"))?;
        // The sum of all bytes with the checksum field counted as eight spaces.
        let bytes = |s: &[u8]| s.iter().map(|&x| u64::from(x)).sum::<u64>();
        let sum = bytes(b) - bytes(&b[148..156]) + 8 * u64::from(b' ');
        if stored != sum {
            return Err(bad("has a wrong checksum"));
        }
        let gnu = &b[257..265] == b"ustar  \0";
        let posix = &b[257..263] == b"ustar\0" && &b[263..265] == b"00";
        if !gnu && !posix {
            return Err(bad(
                "has no ustar magic (a pre-POSIX header); bundles use ustar or GNU headers",
            ));
        }
        let size = size_field(&b[124..136]).ok_or_else(|| bad("has an unreadable size"))?;
        let mut name = until_nul(&b[0..100]).to_vec();
        if posix {
            let prefix = until_nul(&b[345..500]);
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }
        Ok(RawHeader {
            name,
            kind: b[156],
            size,
        })
    }
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&x| x == 0).map_or(b, |i| &b[..i])
}

/// An octal field: optional leading spaces, digits, then only NULs and spaces.
fn octal(field: &[u8]) -> Option<u64> {
    let s = field.iter().skip_while(|&&c| c == b' ');
    let digits: Vec<u8> = s
        .clone()
        .take_while(|c| c.is_ascii_digit())
        .copied()
        .collect();
    let rest = s.skip(digits.len());
    if digits.is_empty() || digits.iter().any(|&d| d > b'7') {
        return None;
    }
    if !rest.into_iter().all(|&c| c == 0 || c == b' ') {
        return None;
    }
    digits.iter().try_fold(0u64, |v, &d| {
        v.checked_mul(8)?.checked_add(u64::from(d - b'0'))
    })
}

/// The size field: octal, or GNU base-256 (`0x80`, three zero bytes, then 8 bytes big-endian)
/// for sizes of 8 GiB and more.
fn size_field(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 == 0 {
        return octal(field);
    }
    if field[0] != 0x80 || field[1..4].iter().any(|&b| b != 0) {
        return None;
    }
    Some(u64::from_be_bytes(field[4..12].try_into().ok()?))
}

/// The records of one PAX extended header that vault uses.
#[derive(Debug, Default)]
struct Pax {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Pax {
    /// Parses `LEN key=value\n` records; `LEN` counts the whole record, in decimal.
    fn parse(mut data: &[u8], at: u64) -> Result<Pax> {
        let bad = |why: String| {
            TarError::Bad(format!("the PAX header at offset {at} is malformed: {why}"))
        };
        let mut pax = Pax::default();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        while !data.is_empty() {
            let digits = data.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 || digits > 5 || data[0] == b'0' || data.get(digits) != Some(&b' ') {
                return Err(bad("a record does not start with its length".into()));
            }
            let len: usize = std::str::from_utf8(&data[..digits])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("a record length is not a number".into()))?;
            if len > data.len() || len < digits + 3 || data[len - 1] != b'\n' {
                return Err(bad("a record's length does not match its text".into()));
            }
            let record = &data[digits + 1..len - 1];
            let eq = record
                .iter()
                .position(|&c| c == b'=')
                .filter(|&i| i > 0)
                .ok_or_else(|| bad("a record is not key=value".into()))?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            if seen.iter().any(|k| k == key) {
                return Err(bad(format!("key {} appears twice", escape_bytes(key))));
            }
            seen.push(key.to_vec());
            match key {
                b"path" => pax.path = Some(value.to_vec()),
                b"size" => {
                    let v = std::str::from_utf8(value)
                        .ok()
                        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| bad("size is not a decimal number".into()))?;
                    pax.size = Some(v);
                }
                k if PAX_IGNORED.iter().any(|i| i.as_bytes() == k) => {}
                k => {
                    return Err(TarError::Bad(format!(
                        "the PAX header at offset {at} has the key {}; bundles may use only path and size ({} are ignored)",
                        escape_bytes(k),
                        PAX_IGNORED.join(", ")
                    )))
                }
            }
            data = &data[len..];
        }
        Ok(pax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields() {
        assert_eq!(octal(b"0000644\0"), Some(0o644));
        assert_eq!(octal(b"  644 \0\0"), Some(0o644));
        assert_eq!(octal(b"\0\0\0\0"), None);
        assert_eq!(octal(b"0008\0"), None);
        assert_eq!(octal(b"12 3\0"), None);
        assert_eq!(size_field(b"00000000004\0"), Some(4));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&(64u64 << 30).to_be_bytes());
        assert_eq!(size_field(&big), Some(64 << 30));
        big[1] = 1;
        assert_eq!(size_field(&big), None);
        assert_eq!(size_field(&[0xff; 12]), None);
    }

    #[test]
    fn pax_records() {
        let p = Pax::parse(b"21 path=h/root/etc/x\n11 size=42\n13 mtime=0.5\n", 0).unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"h/root/etc/x"[..]));
        assert_eq!(p.size, Some(42));
        for bad in [
            &b"22 path=h/root/etc/x\n"[..],
            b"020 path=h/root/etc/x\n",
            b"10 size=-1\n",
            b"11 size=1x\n",
            b"6 =ab\n",
            b"5 a=b",
            b"7 path\n\n",
            b"99999999999999999999 path=x\n",
        ] {
            assert!(
                Pax::parse(bad, 0).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
