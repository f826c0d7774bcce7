//! Opening what the user (or a stick) names as an input: an image, a bundle, a device, the
//! binary to carry. Only a regular file or a block device is read, and that is decided on the
//! open descriptor before the first read: opening a FIFO for reading would block until a
//! writer appears (forever, for a planted one), a character device can stream without end,
//! and a path checked before opening could be swapped in between.

use std::fs::{File, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

use super::{Error, Result};

/// Opens `path` for reading if it is a regular file or a block device; anything else is
/// [`Error::NotAFile`], without blocking and without reading from it.
pub fn open_input(path: &Path) -> Result<File> {
    // O_NONBLOCK: the open itself of a FIFO with no writer returns at once. O_NOCTTY: a
    // terminal named by mistake does not become the controlling one.
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        // A socket cannot be opened at all (ENXIO): say what it is.
        match rustix::fs::stat(path) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Socket => Error::NotAFile {
                path: path.into(),
                kind: "a socket",
            },
            _ => Error::io("cannot open", path, e.into()),
        }
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("cannot open", path, e.into()))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    check_kind(path, kind)?;
    if kind == FileType::BlockDevice {
        // A removable drive opened with O_NONBLOCK opens even with no medium, and every read
        // then fails (an empty CD drive fills the console with I/O errors). Opened again,
        // without it, through the descriptor (the same device, whatever the path names now),
        // it says ENOMEDIUM as it should.
        let again = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        match rustix::fs::open(
            again.as_str(),
            OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dev) => return Ok(File::from(dev)),
            // No /proc: keep the first descriptor.
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(Error::io("cannot open", path, e.into())),
        }
    }
    // Ordinary blocking reads from here on (the flag means nothing for a regular file, but a
    // descriptor handed on should not surprise anyone).
    let flags =
        rustix::fs::fcntl_getfl(&fd).map_err(|e| Error::io("cannot open", path, e.into()))?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK)
        .map_err(|e| Error::io("cannot open", path, e.into()))?;
    Ok(File::from(fd))
}

/// Refuses a descriptor already open (e.g. for writing) that is not a regular file or block
/// device.
pub(crate) fn check_open(file: &File, path: &Path) -> Result<()> {
    let st = rustix::fs::fstat(file).map_err(|e| Error::io("cannot open", path, e.into()))?;
    check_kind(path, FileType::from_raw_mode(st.st_mode))
}

fn check_kind(path: &Path, kind: FileType) -> Result<()> {
    let kind = match kind {
        FileType::RegularFile | FileType::BlockDevice => return Ok(()),
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Directory => "a directory",
        FileType::CharacterDevice => "a character device",
        FileType::Socket => "a socket",
        FileType::Symlink | FileType::Unknown => "not a file",
    };
    Err(Error::NotAFile {
        path: path.into(),
        kind,
    })
}

/// Identifies a file across names (hard links, symbolic links, `/proc/self/fd/N`), and a block
/// device across device nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    /// The device number of a block device.
    rdev: Option<u64>,
}

impl FileId {
    pub fn of(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            rdev: meta.file_type().is_block_device().then(|| meta.rdev()),
        }
    }

    /// The file `file` (open as `path`) is.
    pub fn of_file(file: &File, path: &Path) -> Result<FileId> {
        Ok(FileId::of(
            &file
                .metadata()
                .map_err(|e| Error::io("cannot read", path, e))?,
        ))
    }

    /// Whether both name the same file, or the same block device.
    pub fn same(&self, other: &FileId) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
            || self.rdev.is_some_and(|r| other.rdev == Some(r))
    }
}

/// An input of a run that writes: the output may be none of them.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub path: &'a Path,
    /// "input image", "bundle", "vault binary".
    pub what: &'static str,
    pub id: FileId,
}
