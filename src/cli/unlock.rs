//! `vault unlock`, `vault place`, `vault wipe`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use vault::bundle::KdfLimits;
use vault::escape::{escape, escape_path};
use vault::unlock::{StageSel, UnlockOptions};
use vault::{prompt, ExitCode};

use super::source::{open_bundle, unwrap_with_retries};
use super::util::{human_bytes, PassphraseArgs};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StageArg {
    /// Only entries needed before partitioning (placed on the live system under /tmp or /run).
    Disk,
    /// Only entries placed under --root.
    Root,
    /// Both.
    All,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The bundle: a bundle file, or an image or device carrying one. Without it, vault looks on
    /// the installer disk, then on the other block devices (not RAM, loop or zram ones), then
    /// under /iso.
    pub bundle: Option<PathBuf>,
    /// Root of the installed system, where root-stage entries go.
    #[arg(long, default_value = "/mnt")]
    pub root: PathBuf,
    /// The host this machine is (default: the bundle's only host; among several, the one
    /// whose recorded identity matches this machine, else a menu).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Which entries to place.
    #[arg(long, value_enum, default_value = "all")]
    pub stage: StageArg,
    /// Verify everything and run every check of a real run (same verdict, same exit code);
    /// print what would be placed, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace existing files that differ from the bundle's (no copy of the old file is kept).
    #[arg(long)]
    pub force: bool,
    /// Allow a --root that is not a mount point.
    #[arg(long)]
    pub root_not_mountpoint: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Ask through systemd-ask-password (automatic when there is no terminal).
    #[arg(long)]
    pub ask_password: bool,
    /// How long systemd-ask-password waits for a password agent to answer (0: no limit).
    #[arg(long, value_name = "SECONDS", default_value_t = vault::prompt::systemd::DEFAULT_TIMEOUT.as_secs())]
    pub ask_password_timeout: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Resolve disk-stage targets under DIR instead of / (for tests).
    #[arg(long, hide = true, default_value = "/")]
    pub disk_root: PathBuf,
    /// Largest total size staged in memory before placing; above it files stream into
    /// temporaries beside their targets (for tests of that path).
    #[arg(long, hide = true, value_name = "BYTES")]
    pub staging_memory: Option<u64>,
    /// Read this machine's identity from sysfs under DIR instead of /sys (for tests; the
    /// match says where it read).
    #[arg(long, hide = true, value_name = "DIR", default_value = vault::identity::sysfs::DEFAULT_ROOT)]
    pub sysfs_root: PathBuf,
    /// Where `--stage disk` keeps the root-stage entries (must be on ramfs or tmpfs).
    #[arg(long, hide = true, default_value = vault::staging::DEFAULT_DIR)]
    pub staging_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlaceArgs {
    /// Root of the installed system.
    #[arg(long, default_value = "/mnt")]
    pub root: PathBuf,
    /// Replace existing files that differ from the bundle's (no copy of the old file is kept).
    #[arg(long)]
    pub force: bool,
    /// Allow a --root that is not a mount point.
    #[arg(long)]
    pub root_not_mountpoint: bool,
    /// The staging area `vault unlock --stage disk` wrote.
    #[arg(long, hide = true, default_value = vault::staging::DEFAULT_DIR)]
    pub staging_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct WipeArgs {
    /// The staging area to discard.
    #[arg(long, hide = true, default_value = vault::staging::DEFAULT_DIR)]
    pub staging_dir: PathBuf,
}

pub fn run(a: UnlockArgs, quiet: bool) -> vault::Result<ExitCode> {
    let mut opts = UnlockOptions::new(a.root.clone());
    opts.host = a.host.clone();
    opts.chooser = super::identify::chooser(a.sysfs_root.clone(), quiet);
    opts.stages = match a.stage {
        StageArg::Disk => StageSel::Disk,
        StageArg::Root => StageSel::Root,
        StageArg::All => StageSel::All,
    };
    opts.dry_run = a.dry_run;
    opts.place.force = a.force;
    opts.disk_root = a.disk_root.clone();
    if let Some(m) = a.staging_memory {
        opts.memory_limit = m;
    }
    // Before the passphrase: a wrong --root should not cost a typed passphrase.
    vault::unlock::precheck(&opts, !a.root_not_mountpoint)?;
    if !opts.place.chown && !quiet && !a.dry_run {
        eprintln!(
            "note: not running as root, so files keep your owner instead of the bundle's uid:gid"
        );
    }

    // `--stage disk` keeps the root entries in RAM for `vault place`: check the staging
    // area before the passphrase too. Only the default location gets a fresh ramfs mounted.
    let stage_root = matches!(a.stage, StageArg::Disk) && !a.dry_run;
    let mount = a.staging_dir == std::path::Path::new(vault::staging::DEFAULT_DIR);
    if matches!(a.stage, StageArg::Disk) && a.dry_run {
        vault::staging::check_usable(&a.staging_dir, mount)?;
    }
    if stage_root {
        vault::staging::prepare(&a.staging_dir, mount)?;
        for p in vault::staging::sweep_stale(&a.staging_dir)? {
            eprintln!(
                "note: wiped {}, the staging area of an interrupted earlier run",
                escape_path(&p)
            );
        }
    }
    // However this run ends, a ramfs it mounted and left empty is unmounted.
    let _release = stage_root.then(|| Release(a.staging_dir.clone()));

    let opened = open_bundle(a.bundle.as_deref())?;
    let name = opened.name.clone();
    let limits = KdfLimits::for_this_machine();
    let given = match &a.passphrase.passphrase_file {
        Some(f) => Some(prompt::from_file(f)?),
        None => None,
    };
    let asking = super::source::Asking {
        agents: a.ask_password,
        agent_timeout: (a.ask_password_timeout > 0)
            .then(|| std::time::Duration::from_secs(a.ask_password_timeout)),
    };
    let (locked, key) = unwrap_with_retries(opened.locked, &name, given, &limits, asking)?;
    let payload = locked.decrypt(key)?;
    let bar = super::progress::Progress::spinner("verifying and placing", quiet || a.json);
    let (report, staged) = if stage_root {
        let stager = vault::staging::Stager::new(&a.staging_dir, &name)?;
        let (r, n) = vault::unlock::unlock_and_stage(payload, &name, &opts, stager)?;
        (r, Some(n))
    } else {
        (vault::unlock::unlock(payload, &name, &opts)?, None)
    };
    bar.finish();

    warn_not_swept(&report.not_swept);
    warn_open_folders(&report.items);
    if a.json {
        super::json::print(&report)?;
        return Ok(ExitCode::Ok);
    }
    if quiet {
        return Ok(ExitCode::Ok);
    }
    let host = escape(report.host.as_deref().unwrap_or("(shared entries only)"));
    print_swept(&report.swept, &report.restored, report.dry_run);
    for i in &report.items {
        let verb = match (report.dry_run, i.action) {
            (true, "create") => "would create ",
            (true, "replace") => "would replace",
            (true, "exists") => "exists (kept)",
            (_, "in place") => "in place     ",
            (true, _) => "REFUSED      ",
            (false, "replace") => "replaced     ",
            (false, "exists") => "exists (kept)",
            (false, _) => "placed       ",
        };
        let size = if i.kind == vault::archive::Kind::Dir {
            "dir".to_owned()
        } else {
            human_bytes(i.size)
        };
        // Without root the files keep this user as owner: say that, not the bundle's uid:gid.
        let (uid, gid) = match opts.place.chown || i.action == "exists" {
            // A kept folder's line shows its real owner (the report carries it).
            true => (i.uid, i.gid),
            false => (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
        };
        println!(
            "{verb} {} ({:04o} {uid}:{gid}, {size})",
            escape_path(&i.path),
            i.mode,
        );
    }
    // Items already in place and folders kept are not counted as placed.
    let n = report
        .items
        .iter()
        .filter(|i| matches!(i.action, "create" | "replace"))
        .count();
    let left = report.items.len() - n;
    let kept = match left {
        0 => String::new(),
        k => format!(" ({k} already in place or kept)"),
    };
    if report.dry_run {
        println!("Dry run for host {host}: the bundle verified ({}); {n} item(s) would be placed{kept}. Nothing was written.", human_bytes(report.verified_bytes));
    } else {
        println!(
            "Unlocked {}: placed {n} item(s) for host {host}{kept}.",
            escape_path(&name)
        );
    }
    if let Some(k) = staged {
        println!(
            "Kept {k} root-stage item(s) in RAM at {}. After partitioning and mounting the target, run `{}` (or `{}` to discard them).",
            escape_path(&a.staging_dir),
            vault::staging::as_root("vault place --root /mnt"),
            vault::staging::as_root("vault wipe")
        );
    }
    Ok(ExitCode::Ok)
}

/// What a killed earlier run left and this one removed or put back.
fn print_swept(swept: &[PathBuf], restored: &[PathBuf], dry_run: bool) {
    let (remove, restore) = match dry_run {
        true => ("would remove ", "would restore"),
        false => ("removed      ", "restored     "),
    };
    for p in swept {
        println!(
            "{remove} {} (a temporary left by an interrupted earlier run)",
            escape_path(p)
        );
    }
    for p in restored {
        println!(
            "{restore} {} (the file an interrupted earlier run with --force had replaced)",
            escape_path(p)
        );
    }
}

/// A folder kept as it is that every user may write into (and without the sticky bit, which
/// would stop them removing others' files): what vault places in it can be renamed or
/// replaced by anyone.
fn warn_open_folders(items: &[vault::unlock::Placed]) {
    for i in items {
        if i.action == "exists" && i.mode & 0o002 != 0 && i.mode & 0o1000 == 0 {
            eprintln!(
                "warning: {} is kept as it is, and every user may write to it (mode {:04o}, no sticky bit): anyone can rename or replace what vault places in it; `chmod o-w` it before the installed system boots",
                escape_path(&i.path),
                i.mode
            );
        }
    }
}

/// What a killed earlier run left and this one could not remove: on stderr, also with
/// `--quiet` and `--json` (the JSON report lists them too).
fn warn_not_swept(left: &[vault::place::NotSwept]) {
    for n in left {
        eprintln!(
            "warning: could not remove {} (a temporary folder left by an interrupted earlier run): {}",
            escape_path(&n.path),
            n.why
        );
    }
}

/// Calls [`vault::staging::release`] when dropped.
struct Release(PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        vault::staging::release(&self.0);
    }
}

pub fn run_place(a: PlaceArgs, quiet: bool) -> vault::Result<ExitCode> {
    let mut opts = UnlockOptions::new(a.root.clone());
    opts.stages = StageSel::Root;
    vault::unlock::precheck(&opts, !a.root_not_mountpoint)?;
    opts.place.force = a.force;
    for p in vault::staging::sweep_stale(&a.staging_dir)? {
        eprintln!(
            "note: wiped {}, left by an interrupted earlier run",
            escape_path(&p)
        );
    }
    let report = vault::staging::place(&a.staging_dir, &a.root, opts.place)?;
    warn_not_swept(&report.not_swept);
    if let Some(why) = &report.not_wiped {
        eprintln!(
            "warning: the files are placed, but the staging area could not be wiped: {}; run `{}`",
            escape(why),
            vault::staging::as_root("vault wipe")
        );
    }
    if !quiet {
        print_swept(&report.swept, &report.restored, false);
        for p in &report.placed {
            println!("placed        {}", escape_path(p));
        }
        println!(
            "Placed {} file(s) from {} for host {} and wiped the staging area.",
            report.placed.len(),
            escape(&report.bundle),
            escape(report.host.as_deref().unwrap_or("(shared entries only)"))
        );
    }
    Ok(ExitCode::Ok)
}

pub fn run_wipe(a: WipeArgs, quiet: bool) -> vault::Result<ExitCode> {
    let had = vault::staging::wipe(&a.staging_dir, true)?;
    if !quiet {
        if had {
            println!(
                "Wiped the staged bundle in {}.",
                escape_path(&a.staging_dir)
            );
        } else {
            println!("Nothing was staged in {}.", escape_path(&a.staging_dir));
        }
    }
    Ok(ExitCode::Ok)
}
