//! Reading the files of the secrets repository without following symbolic links inside it.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::Error;

/// Reads `root/rel`, a file of the secrets repo, only if it is a regular file reached through
/// real folders: no component of `rel` may be a symbolic link (each is opened with
/// `O_NOFOLLOW` relative to the one before, so a link swapped in meanwhile is refused too).
/// A link would let a hostile `secrets.nix` pull in any file the user can decrypt, from
/// outside the repo, and re-encrypt it to recipients it chooses. `Ok(None)`: it does not
/// exist. `root` itself is the folder the user named and is followed.
pub fn read_repo_file(root: &Path, rel: &Path) -> Result<Option<Vec<u8>>, Error> {
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            _ => {
                return Err(Error::config(
                    root.join(rel),
                    "names a file outside its folder; give a path inside it",
                ))
            }
        }
    }
    let Some((last, dirs)) = names.split_last() else {
        return Err(Error::config(root.join(rel), "is not a file"));
    };
    let dir_flags = OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY;
    let mut dir: OwnedFd = rustix::fs::open(root, dir_flags, Mode::empty())
        .map_err(|e| Error::io("cannot open", root, e.into()))?;
    let mut at = root.to_path_buf();
    for name in dirs {
        at.push(name);
        if !is_a(&dir, name, &at, FileType::Directory)? {
            return Ok(None);
        }
        dir = open_no_follow(&dir, name, &at, dir_flags)?;
    }
    at.push(last);
    if !is_a(&dir, last, &at, FileType::RegularFile)? {
        return Ok(None);
    }
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let mut f = std::fs::File::from(open_no_follow(&dir, last, &at, flags)?);
    let meta = f.metadata().map_err(|e| Error::io("cannot stat", &at, e))?;
    if !meta.is_file() {
        return Err(Error::config(&at, "is not a regular file"));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| Error::io("cannot read", &at, e))?;
    Ok(Some(bytes))
}

/// Whether `name` in `dir` exists (`false`: it does not), and is of type `want` and not a
/// symbolic link (else an error naming `at`). A stat for a clear message; the `O_NOFOLLOW`
/// open that follows is what enforces it.
fn is_a(dir: &OwnedFd, name: &std::ffi::OsStr, at: &Path, want: FileType) -> Result<bool, Error> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => return Err(Error::io("cannot stat", at, e.into())),
    };
    match FileType::from_raw_mode(st.st_mode) {
        t if t == want => Ok(true),
        FileType::Symlink => Err(Error::config(
            at,
            "is a symbolic link; vault does not follow links inside the secrets repo (one \
             could pull in a file from outside it): replace the link with the file or folder \
             itself, or fix secrets.nix",
        )),
        _ if want == FileType::Directory => Err(Error::config(at, "is not a folder")),
        _ => Err(Error::config(at, "is not a regular file")),
    }
}

fn open_no_follow(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    at: &Path,
    flags: OFlags,
) -> Result<OwnedFd, Error> {
    rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW, Mode::empty()).map_err(|e| {
        if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
            Error::config(at, "was replaced by a symbolic link while vault read it")
        } else {
            Error::io("cannot open", at, e.into())
        }
    })
}

/// The bytes of `path` if it is a regular file, not following a symbolic link in its last
/// component (its folders were checked when it was found).
pub(crate) fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn libc_flags() -> i32 {
    (OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32
}
