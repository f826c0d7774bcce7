//! `vault attach` / `vault detach`: put a bundle on installer media, show or remove it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use vault::escape::{escape, escape_message, escape_path, json::path as json_path};
use vault::media::{self, DeviceInfo};
use vault::ExitCode;

use super::util::human_bytes;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("medium").required(true).args(["image", "device"])))]
pub struct AttachArgs {
    /// The installer image to start from (never modified); needs -o.
    #[arg(long, value_name = "ISO", requires = "output")]
    pub image: Option<PathBuf>,
    /// An already-written stick (whole disk, e.g. /dev/sdb): adds the bundle in place.
    #[arg(long, value_name = "DEV", conflicts_with_all = ["output", "iso_file"])]
    pub device: Option<PathBuf>,
    /// The bundle written by `vault pack`.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// Where to write the new image.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Swap the bundle of an image or stick that already carries one (same MBR slot).
    #[arg(long, conflicts_with = "iso_file")]
    pub replace: bool,
    /// Put the bundle at /vault/bundle inside the ISO9660 tree (works when booted as a CD;
    /// rewrites the image with xorriso) instead of in an appended partition.
    #[arg(long, requires = "image")]
    pub iso_file: bool,
    /// The statically linked vault to carry on the stick (default: this vault, if it is static
    /// and of the installer's architecture).
    #[arg(long, value_name = "PATH", conflicts_with = "no_binary")]
    pub vault_binary: Option<PathBuf>,
    /// Carry no vault binary (the installer has vault already, e.g. built with the installer
    /// module).
    #[arg(long)]
    pub no_binary: bool,
    /// Overwrite an existing output file (never the input).
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation before writing to a device.
    #[arg(long)]
    pub yes: bool,
    /// Allow a device that does not report itself as removable.
    #[arg(long)]
    pub yes_not_removable: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Treat a regular file as the device (tests; skips the block-device checks).
    #[arg(long, hide = true, requires = "device")]
    pub test_file_as_device: bool,
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// The image (or device) to look at.
    #[arg(long, value_name = "IMG", required_unless_present = "discover")]
    pub image: Option<PathBuf>,
    /// On the live system: list the bundles `vault unlock` with no FILE would find, best first.
    #[arg(long, conflicts_with_all = ["image", "output"])]
    pub discover: bool,
    /// Write a copy without the bundle partition here; without -o, only show what it carries.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing output file (never the input).
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The binary to carry: `--vault-binary`, else this vault; none with `--no-binary`.
fn binary(a: &AttachArgs) -> vault::Result<Option<media::Binary>> {
    if a.no_binary {
        return Ok(None);
    }
    Ok(Some(match &a.vault_binary {
        Some(p) => media::Binary::load(p, true)?,
        None => media::Binary::running()?,
    }))
}

fn binary_json(b: Option<&media::Binary>, place: Option<(usize, u64, u64)>) -> serde_json::Value {
    match b {
        Some(b) => serde_json::json!({
            "path": json_path(&b.path), "version": b.version, "arch": b.arch.name(), "sha256": b.sha256,
            "length": b.bytes.len(),
            "slot": place.map(|p| p.0), "offset": place.map(|p| p.1),
            "partition_length": place.map(|p| p.2),
        }),
        None => serde_json::Value::Null,
    }
}

/// What the user runs on the live system: a command that checks the binary's SHA-256 before
/// running it as root.
fn print_binary(b: Option<&media::Binary>, iso_file: bool, slot: Option<usize>) {
    let Some(b) = b else { return };
    println!(
        "carried vault {} ({}): sha256 {}",
        escape(b.version.as_deref().unwrap_or("?")),
        b.arch.name(),
        b.sha256
    );
    if iso_file {
        println!(
            "on the installer: {}",
            media::carry::iso_run_command(&b.sha256)
        );
        return;
    }
    println!("on the installer: {}", media::carry::run_command(&b.sha256));
    let part = slot.map_or_else(
        || "its partition".to_owned(),
        |s| format!("its partition {s} (e.g. /dev/sda{s})"),
    );
    println!(
        "  (the binary runs only if its SHA-256 matches; if the check says FAILED, another device may carry the label {label}: find the stick with `lsblk -o NAME,LABEL,SIZE,MODEL` and put {part} in place of LABEL={label})",
        label = media::carry::LABEL,
    );
}

pub fn run(a: AttachArgs, quiet: bool) -> vault::Result<ExitCode> {
    let bin = binary(&a)?;
    if let Some(dev) = &a.device {
        return run_device(&a, dev.clone(), quiet, bin.as_ref());
    }
    let (Some(image), Some(output)) = (&a.image, &a.output) else {
        unreachable!("clap requires --image with -o, or --device");
    };
    if a.iso_file {
        media::attach_iso_file(image, &a.bundle, output, a.force, bin.as_ref())?;
        let info = media::inspect_image(output)?;
        let (offset, len) = info.iso_file.unwrap_or((0, 0));
        if a.json {
            super::json::print(&serde_json::json!({
                "output": json_path(output), "mode": "iso-file", "path": media::ISO_BUNDLE_PATH,
                "offset": offset, "length": len, "image_length": info.len,
                "binary": binary_json(bin.as_ref(), None),
            }))?;
        } else if !quiet {
            println!(
                "wrote {}: the bundle ({}) is {} in the ISO tree; the image is {}",
                escape_path(output),
                human_bytes(len),
                media::ISO_BUNDLE_PATH,
                human_bytes(info.len)
            );
            print_binary(bin.as_ref(), true, None);
        }
        return Ok(ExitCode::Ok);
    }
    let r = media::attach_image(image, &a.bundle, output, a.replace, a.force, bin.as_ref())?;
    if a.json {
        super::json::print(&serde_json::json!({
            "output": json_path(&r.output), "mode": "partition", "slot": r.slot, "offset": r.start,
            "length": r.len, "sectors": r.sectors, "image_length": r.image_len,
            "replaced": r.replaced, "binary": binary_json(bin.as_ref(), r.binary),
        }))?;
    } else if !quiet {
        println!(
            "wrote {}: bundle ({}) in MBR slot {} (type 0xDA) at byte {}; the image is {}",
            escape_path(output),
            human_bytes(r.len),
            r.slot,
            r.start,
            human_bytes(r.image_len)
        );
        print_binary(bin.as_ref(), false, r.binary.map(|b| b.0));
        println!(
            "write it to a stick with: dd if={} of=/dev/sdX bs=4M conv=fsync",
            escape_path(output)
        );
    }
    Ok(ExitCode::Ok)
}

fn run_device(
    a: &AttachArgs,
    dev: PathBuf,
    quiet: bool,
    bin: Option<&media::Binary>,
) -> vault::Result<ExitCode> {
    let about = if a.test_file_as_device {
        format!("{} (a file standing in for a device)", escape_path(&dev))
    } else {
        let info = DeviceInfo::read(&dev)?;
        info.check(a.yes_not_removable)?;
        // The model is the device's word: Untrusted, escaped and bounded by its Display.
        format!(
            "{} ({}, {}, {})",
            escape_path(&dev),
            info.model,
            human_bytes(info.size),
            if info.removable {
                "removable"
            } else {
                "NOT removable"
            }
        )
    };
    let plan = media::plan_in_place(&dev, &a.bundle, a.replace, bin)?;
    if !a.yes {
        eprintln!("About to change {about}:");
        eprintln!("  {}", escape_message(&plan.describe()));
        eprint!("Type `yes` to continue: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let stdin = std::io::stdin();
        if !stdin.is_terminal() && !a.test_file_as_device {
            return Err(media::Error::NotConfirmed { path: dev }.into());
        }
        let _ = stdin.lock().read_line(&mut line);
        if line.trim() != "yes" {
            return Err(media::Error::NotConfirmed { path: dev }.into());
        }
    }
    let warning = media::attach_in_place(&plan)?;
    if let Some(w) = &warning {
        eprintln!("warning: {}", escape_message(w));
    }
    if a.json {
        super::json::print(&serde_json::json!({
            "device": json_path(&dev), "mode": "partition", "slot": plan.slot, "offset": plan.extent.start,
            "length": plan.extent.len, "sectors": plan.extent.sectors(), "replaced": plan.replace,
            "warning": warning, "binary": binary_json(bin, plan.binary),
        }))?;
    } else if !quiet {
        println!(
            "wrote the bundle ({}) to {} in MBR slot {} at byte {}",
            human_bytes(plan.extent.len),
            escape_path(&dev),
            plan.slot,
            plan.extent.start
        );
        print_binary(bin, false, plan.binary.map(|b| b.0));
    }
    Ok(ExitCode::Ok)
}

pub fn run_detach(a: DetachArgs, quiet: bool) -> vault::Result<ExitCode> {
    let Some(image) = &a.image else {
        return run_discover(a.json);
    };
    let info = match &a.output {
        Some(out) => media::detach_image(image, out, a.force)?,
        None => media::inspect_image(image)?,
    };
    if a.json {
        super::json::print(&serde_json::json!({
            "image": json_path(image),
            "output": a.output.as_deref().map(json_path),
            "length": info.len,
            "iso_end": info.iso_end,
            "slots": info.slots.iter().map(|s| serde_json::json!({
                "slot": s.index, "type": s.sys, "start_lba": s.start_lba, "sectors": s.sectors,
            })).collect::<Vec<_>>(),
            "partition": info.partition.map(|(slot, offset, len)| serde_json::json!({
                "slot": slot, "offset": offset, "length": len,
            })),
            "iso_file": info.iso_file.map(|(offset, len)| serde_json::json!({
                "path": media::ISO_BUNDLE_PATH, "offset": offset, "length": len,
            })),
            "binary": info.binary.as_ref().map(carried_json),
            "binary_damaged": info.binary_damaged,
        }))?;
        return Ok(ExitCode::Ok);
    }
    if quiet {
        return Ok(ExitCode::Ok);
    }
    let shown = a.output.as_ref().unwrap_or(image);
    if a.output.is_some() {
        println!(
            "wrote {} without its bundle partition ({})",
            escape_path(shown),
            human_bytes(info.len)
        );
    }
    println!("{} ({}):", escape_path(shown), human_bytes(info.len));
    if let Some(end) = info.iso_end {
        println!("  ISO9660 volume: bytes 0..{end}");
    }
    for s in &info.slots {
        println!(
            "  MBR slot {}: type 0x{:02X}, sectors {}..{} ({})",
            s.index,
            s.sys,
            s.start_lba,
            s.start_lba + s.sectors,
            human_bytes(s.sectors * media::SECTOR)
        );
    }
    match (info.partition, info.iso_file) {
        (None, None) => println!("  no vault bundle"),
        (p, f) => {
            if let Some((slot, offset, len)) = p {
                println!(
                    "  vault bundle: MBR slot {slot}, bytes {offset}..{} ({})",
                    offset + len,
                    human_bytes(len)
                );
            }
            if let Some((offset, len)) = f {
                println!(
                    "  vault bundle: {} in the ISO tree, bytes {offset}..{} ({})",
                    media::ISO_BUNDLE_PATH,
                    offset + len,
                    human_bytes(len)
                );
            }
        }
    }
    if let Some(c) = &info.binary {
        println!("  {}", carried_line(c));
    }
    if let Some(d) = &info.binary_damaged {
        println!("  vault binary: {}", vault::escape::escape(d));
    }
    Ok(ExitCode::Ok)
}

/// The carried binary as JSON (`detach --image`, `inspect`).
pub fn carried_json(c: &media::Carried) -> serde_json::Value {
    serde_json::json!({
        "location": c.location, "offset": c.offset, "length": c.len, "version": c.version,
        "arch": c.arch, "sha256": c.sha256, "matches_record": c.matches_record,
    })
}

/// One line about the carried binary. Its version is the stick's word (escaped and bounded by
/// `Untrusted`'s Display): it cannot draw over the SHA-256 or the DIFFERS warning.
pub fn carried_line(c: &media::Carried) -> String {
    format!(
        "vault binary: {} {} ({}, {}), {}, sha256 {}{}",
        c.version
            .as_ref()
            .map_or_else(|| "unknown version".to_owned(), ToString::to_string),
        c.arch.unwrap_or("not a static x86_64/aarch64 executable"),
        human_bytes(c.len),
        c.location,
        format_args!("bytes {}..{}", c.offset, c.offset + c.len),
        c.sha256,
        match c.matches_record {
            Some(false) => " (DIFFERS from the SHA-256 recorded when it was attached)",
            _ => "",
        }
    )
}

/// `vault detach --discover`: what discovery finds on this system.
fn run_discover(json: bool) -> vault::Result<ExitCode> {
    let found = match media::discover() {
        // For a script, finding nothing is an answer, not a failure.
        Err(media::Error::NothingFound { .. }) if json => Vec::new(),
        other => other?,
    };
    if json {
        super::json::print(&serde_json::Value::Array(
            found
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "path": json_path(&c.path), "offset": c.offset, "length": c.len,
                        "description": c.description,
                    })
                })
                .collect(),
        ))?;
    } else {
        for c in &found {
            println!(
                "{} ({}, {} bytes at byte {})",
                escape(&c.description),
                human_bytes(c.len),
                c.len,
                c.offset
            );
        }
    }
    Ok(ExitCode::Ok)
}
