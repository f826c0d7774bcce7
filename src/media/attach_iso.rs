//! `vault attach --iso-file`: the CD-capable variant, with the bundle at `/vault/bundle` in the
//! ISO tree, written by `xorriso`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::input::open_input;
use super::output::{check_output, check_space, data_len, interrupted, parent_dir, Temp};
use super::{carry, image, iso9660, mbr, Error, Result};

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
    let (bf, len) = image::check_bundle(bundle)?;
    check_output(
        output,
        force,
        &image::inputs((input, &f, "input image"), Some((bundle, &bf)), binary)?,
    )?;
    if let Some(b) = binary {
        b.check_arch(input, carry::iso_arch(&mut f, input)?)?;
    }
    // One image carries one bundle: not a partition's and a file's.
    if let Ok(Some(table)) = mbr::Table::read(&mut f, input) {
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
            cmd.arg("-map").arg(&t.path).arg(carry::ISO_BINARY_PATH);
            Some(t)
        }
        None => None,
    };
    cmd.args(["-boot_image", "any", "replay"]);
    run_xorriso(cmd)?;
    drop(bin_tmp);
    // Check what xorriso wrote before it replaces anything.
    let mut written = File::open(&out.path).map_err(|e| Error::io("cannot open", &out.path, e))?;
    if iso9660::find_bundle(&mut written, &out.path)?.is_none() {
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
