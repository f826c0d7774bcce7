//! What is mounted where, from `/proc/self/mountinfo`: used to refuse a `--root` that is not a
//! mount point, to find the installer disk, and to refuse writing to a mounted stick.

use std::io;
use std::path::{Path, PathBuf};

/// One line of /proc/self/mountinfo: "major:minor" and the mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub dev: String,
    pub mount_point: PathBuf,
}

/// The current mounts (empty if /proc is not there).
pub fn mountinfo() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| parse(&s))
        .unwrap_or_default()
}

/// Whether `path` is a mount point.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let canon = std::fs::canonicalize(path)?;
    if canon == Path::new("/") {
        return Ok(true);
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse(&text).iter().any(|m| m.mount_point == canon))
}

fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let dev = f.nth(2)?.to_owned();
            let mp = f.nth(1)?;
            Some(Mount {
                dev,
                mount_point: PathBuf::from(unescape(mp)),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(((b[i + 1] - b'0') << 6) | ((b[i + 2] - b'0') << 3) | (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let m = parse(
            "36 1 254:1 / /iso ro,relatime - iso9660 /dev/vda1 ro\n\
             40 1 8:3 / /mnt/my\\040disk rw - ext4 /dev/sda3 rw\n\
             bad\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].dev, "254:1");
        assert_eq!(m[0].mount_point, PathBuf::from("/iso"));
        assert_eq!(m[1].mount_point, PathBuf::from("/mnt/my disk"));
        assert_eq!(unescape("/mnt/a\\040b\\134"), "/mnt/a b\\");
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/")).unwrap());
    }
}
