//! ISO9660: the volume size (where the ISO ends on a stick) and the `/vault/bundle` file of the
//! CD-capable variant, which `xorriso` writes into the ISO tree.
//!
//! The reader is minimal and defensive: only the primary volume descriptor and the primary
//! directory tree (ISO9660 names, compared without version and trailing dot, case-insensitive),
//! with every offset bounds-checked. Rock Ridge and Joliet names are not needed for the two
//! fixed names vault looks up.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::input::open_input;
use super::output::{check_output, check_space, data_len, interrupted, parent_dir, Temp};
use super::{read_at_most, Error, Result};

const SECTOR: u64 = 2048;
/// Directories larger than this are not walked (the path vault looks for is two levels deep).
const MAX_DIR: u64 = 1 << 20;

/// The primary volume descriptor's essentials.
#[derive(Debug, Clone, Copy)]
pub struct Volume {
    pub block_size: u64,
    /// Bytes covered by the ISO9660 volume.
    pub size: u64,
    root_extent: u64,
    root_len: u64,
}

/// Reads the primary volume descriptor at sector 16. `Ok(None)` when there is none.
pub fn volume(file: &mut File, path: &Path) -> Result<Option<Volume>> {
    let pvd = read_at_most(file, path, 16 * SECTOR, SECTOR as usize)?;
    if pvd.len() < 190 || pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return Ok(None);
    }
    let blocks = u64::from(u32::from_le_bytes([pvd[80], pvd[81], pvd[82], pvd[83]]));
    let block_size = u64::from(u16::from_le_bytes([pvd[128], pvd[129]]));
    if !matches!(block_size, 512 | 1024 | 2048) {
        return Ok(None);
    }
    let root = &pvd[156..190];
    Ok(Some(Volume {
        block_size,
        size: blocks * block_size,
        root_extent: u64::from(u32::from_le_bytes([root[2], root[3], root[4], root[5]])),
        root_len: u64::from(u32::from_le_bytes([root[10], root[11], root[12], root[13]])),
    }))
}

/// A file found in the ISO9660 tree: byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoFile {
    pub offset: u64,
    pub len: u64,
}

/// Looks up `/vault/bundle` in the ISO at the start of `file`.
pub fn find_bundle(file: &mut File, path: &Path) -> Result<Option<IsoFile>> {
    find_path(file, path, &["VAULT"], "BUNDLE")
}

/// Looks up the file `name` under the directories `dirs` (from the root) in the ISO at the
/// start of `file`.
pub fn find_path(
    file: &mut File,
    path: &Path,
    dirs: &[&str],
    name: &str,
) -> Result<Option<IsoFile>> {
    let Some(vol) = volume(file, path)? else {
        return Ok(None);
    };
    let (mut extent, mut len) = (vol.root_extent, vol.root_len);
    for d in dirs {
        let Some(dir) = lookup(file, path, &vol, extent, len, d, true)? else {
            return Ok(None);
        };
        (extent, len) = (dir.offset / vol.block_size, dir.len);
    }
    lookup(file, path, &vol, extent, len, name, false)
}

fn lookup(
    file: &mut File,
    path: &Path,
    vol: &Volume,
    extent: u64,
    len: u64,
    want: &str,
    want_dir: bool,
) -> Result<Option<IsoFile>> {
    if len > MAX_DIR {
        return Ok(None);
    }
    let Some(start) = extent.checked_mul(vol.block_size) else {
        return Ok(None);
    };
    let data = read_at_most(file, path, start, len as usize)?;
    let mut i = 0usize;
    while i < data.len() {
        let rec_len = usize::from(data[i]);
        if rec_len == 0 {
            // Records do not cross sectors: the rest of this sector is padding.
            i = (i / SECTOR as usize + 1) * SECTOR as usize;
            continue;
        }
        let Some(rec) = data.get(i..i + rec_len) else {
            break;
        };
        i += rec_len;
        if rec.len() < 33 {
            continue;
        }
        let name_len = usize::from(rec[32]);
        let Some(name) = rec.get(33..33 + name_len) else {
            continue;
        };
        let flags = rec[25];
        let is_dir = flags & 0x02 != 0;
        // Multi-extent files are not something vault writes.
        if is_dir != want_dir || flags & 0x80 != 0 {
            continue;
        }
        let name = String::from_utf8_lossy(name);
        let name = name.split(';').next().unwrap_or("").trim_end_matches('.');
        if name.eq_ignore_ascii_case(want) {
            let ext = u64::from(u32::from_le_bytes([rec[2], rec[3], rec[4], rec[5]]));
            let size = u64::from(u32::from_le_bytes([rec[10], rec[11], rec[12], rec[13]]));
            return Ok(ext
                .checked_mul(vol.block_size)
                .map(|offset| IsoFile { offset, len: size }));
        }
    }
    Ok(None)
}

/// `vault attach --iso-file`: a new image with the bundle at `/vault/bundle` in the ISO tree,
/// boot setup replayed by xorriso. The output is written under a temporary name and renamed;
/// a signal ends xorriso and removes what it wrote.
pub fn attach_iso_file(
    input: &Path,
    bundle: &Path,
    output: &Path,
    force: bool,
    binary: Option<&super::Binary>,
) -> Result<PathBuf> {
    let mut f = open_input(input)?;
    let (bf, len) = super::image::check_bundle(bundle)?;
    check_output(
        output,
        force,
        &super::image::inputs((input, &f, "input image"), Some((bundle, &bf)), binary)?,
    )?;
    if let Some(b) = binary {
        b.check_arch(input, super::carry::iso_arch(&mut f, input)?)?;
    }
    // One image carries one bundle: not a partition's and a file's.
    if let Ok(Some(table)) = super::mbr::Table::read(&mut f, input) {
        if let Some(s) = table.vault_slots().next() {
            return Err(Error::AlreadyCarries {
                path: input.into(),
                slot: s.index,
            });
        }
    }
    // xorriso writes a new ISO: about the input's data, the bundle and the binary.
    let in_len = super::byte_len(&mut f, input)?;
    let extra = len + binary.map_or(0, |b| b.bytes.len() as u64);
    check_space(&parent_dir(output), data_len(&f, input, in_len)? + extra)?;
    // xorriso writes into an existing empty file in place (an existing non-empty one it
    // refuses), so the temporary is the output device.
    let out = Temp::beside(output)?;
    let mut cmd = Command::new("xorriso");
    cmd.arg("-indev")
        .arg(input)
        .arg("-outdev")
        .arg(&out.path)
        .arg("-map")
        .arg(bundle)
        .arg(super::ISO_BUNDLE_PATH);
    let bin_tmp = match binary {
        Some(b) => {
            // The checked bytes, not the path again: the file could change in between. Mode
            // 0755 goes into the Rock Ridge attributes, so the live system can run it from /iso.
            let t = Temp::beside(output)?;
            std::os::unix::fs::FileExt::write_all_at(&t.file, &b.bytes, 0)
                .map_err(|e| Error::io("cannot write", &t.path, e))?;
            t.file
                .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(|e| Error::io("cannot set the mode of", &t.path, e))?;
            cmd.arg("-map")
                .arg(&t.path)
                .arg(super::carry::ISO_BINARY_PATH);
            Some(t)
        }
        None => None,
    };
    cmd.args(["-boot_image", "any", "replay"]);
    run_xorriso(cmd)?;
    drop(bin_tmp);
    // Check what xorriso wrote before it replaces anything.
    let mut written = File::open(&out.path).map_err(|e| Error::io("cannot open", &out.path, e))?;
    if find_bundle(&mut written, &out.path)?.is_none() {
        return Err(Error::Tool {
            tool: "xorriso",
            why: format!("its output has no {}", super::ISO_BUNDLE_PATH),
        });
    }
    out.publish(output, force, 0o600)?;
    Ok(output.to_path_buf())
}

/// Runs xorriso to its end, or ends it when a signal arrives.
fn run_xorriso(mut cmd: Command) -> Result<()> {
    let tool = |why: String| Error::Tool {
        tool: "xorriso",
        why,
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool(e.to_string()))?;
    // Its messages, read on the side so that a full pipe never stalls it; the last lines say
    // why it failed.
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut tail = String::new();
        if let Some(mut s) = stderr {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut s, &mut buf);
            let text = String::from_utf8_lossy(&buf);
            let lines: Vec<&str> = text.lines().rev().take(5).collect();
            tail = lines.into_iter().rev().collect::<Vec<_>>().join(" / ");
        }
        tail
    });
    let status = loop {
        if let Err(e) = interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            return Err(e);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(e) => return Err(tool(e.to_string())),
        }
    };
    let tail = reader.join().unwrap_or_default();
    // Ctrl-C reaches xorriso too: report the signal, not its failure.
    interrupted()?;
    if !status.success() {
        return Err(tool(format!("{status} ({tail})")));
    }
    Ok(())
}
