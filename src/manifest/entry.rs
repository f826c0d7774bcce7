//! What an entry may say, checked alike in `vault.toml` and in a bundle's own manifest (which
//! is untrusted input): its stage, mode, owner, target and host name.

use std::fmt;

/// Where an entry is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Needed before partitioning (e.g. `/tmp/disko-password`): placed at its absolute path on
    /// the live system, which must be under `/tmp/` or `/run/`.
    Disk,
    /// Placed under the target root (default `/mnt`) after the target is mounted.
    Root,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Disk => "disk",
            Stage::Root => "root",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        match s {
            "disk" => Some(Stage::Disk),
            "root" => Some(Stage::Root),
            _ => None,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Directories under which disk-stage entries may be placed on the live system. Anything else
/// would let a bundle write into the installer's own `/etc`.
pub const DISK_STAGE_PREFIXES: &[&str] = &["/tmp/", "/run/"];

/// Largest permission value an entry may ask for: no setuid, setgid or sticky bits.
pub const MAX_MODE: u32 = 0o777;

/// Largest uid or gid an entry may ask for: 4294967295, `(uid_t)-1`, is what `chown` reads as
/// "leave unchanged", not an owner.
pub const MAX_ID: u32 = u32::MAX - 1;

/// Checks a uid or gid (`what`: "uid" or "gid") against [`MAX_ID`].
pub fn check_id(what: &str, id: u32) -> std::result::Result<(), String> {
    if id > MAX_ID {
        return Err(format!(
            "{what} {id} is out of range (0 to {MAX_ID}; {id} means \"unchanged\" to chown)"
        ));
    }
    Ok(())
}

/// Host names become path components inside the bundle; keep them hostname-like.
pub fn check_host_name(name: &str) -> std::result::Result<(), &'static str> {
    let ok_start = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok_start || name.len() > 63 {
        return Err("must start with a lowercase letter or digit and be at most 63 characters");
    }
    if !name.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
    }) {
        return Err("may contain only a-z, 0-9, '-', '_' and '.'");
    }
    Ok(())
}

/// A target must be an absolute, normalized path: no `.` or `..` components, no empty
/// components, no trailing slash, no NUL or other control character, not `/` itself. The
/// same check guards targets read
/// back from an (untrusted) bundle.
pub fn check_target(t: &str) -> std::result::Result<(), &'static str> {
    if !t.starts_with('/') {
        return Err("must be an absolute path (start with /)");
    }
    if t == "/" {
        return Err("must name a file or directory, not /");
    }
    if t.len() > 4095 {
        return Err("is longer than 4095 bytes");
    }
    if t.ends_with('/') {
        return Err("must not end with /");
    }
    if t.contains('\0') {
        return Err("must not contain a NUL byte");
    }
    // Targets are printed (plans, errors, inspect): a terminal would act on ESC, BEL, CSI...
    if t.chars().any(char::is_control) {
        return Err(
            "must not contain control characters (newline, tab, ESC, DEL, U+0080 to U+009F)",
        );
    }
    for c in t[1..].split('/') {
        match c {
            "" => return Err("must not contain an empty component (//)"),
            "." | ".." => return Err("must not contain . or .. components"),
            c if c.len() > 255 => return Err("has a component longer than 255 bytes"),
            _ => {}
        }
    }
    Ok(())
}
