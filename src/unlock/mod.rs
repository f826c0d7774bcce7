//! `vault unlock`: verify a whole decrypted payload, then place the chosen host's items.
//!
//! Staging (DESIGN.md §3): when the files to place total at most
//! [`UnlockOptions::memory_limit`], they are held in zeroizing memory until the stream's final
//! chunk has authenticated, and only then written. Larger payloads (a repo mirror) go straight
//! into `O_EXCL` temporaries beside their targets, which stay invisible until the commit and
//! are removed if anything fails, so peak memory does not grow with the payload.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::archive::read::{read_ahead, walk_pipelined, Sink};
use crate::archive::{BundleManifest, Item, Kind, Limits};
use crate::bundle::Payload;
use crate::manifest::Stage;
use crate::place::with_leftovers;
use crate::place::{is_mount_point, Conflict, ConflictKind, PlaceOptions, Placer, SweptKind};
use crate::staging::Stager;

mod sink;
use crate::{Error, Result};
use sink::UnlockSink;

/// Which stages to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageSel {
    Disk,
    Root,
    All,
}

impl StageSel {
    pub fn includes(self, s: Stage) -> bool {
        matches!(
            (self, s),
            (StageSel::All, _) | (StageSel::Disk, Stage::Disk) | (StageSel::Root, Stage::Root)
        )
    }
}

#[derive(Debug, Clone)]
pub struct UnlockOptions {
    /// The host to place; `None`: the bundle's only host, or the one `chooser` picks.
    pub host: Option<String>,
    /// How to choose among several hosts without `host` (docs/guide/fleet.md).
    pub chooser: crate::identity::choose::HostChooser,
    pub stages: StageSel,
    /// Target root for root-stage items (`/mnt`).
    pub root: PathBuf,
    /// Where disk-stage targets are resolved (`/` on the live system; a test directory in tests).
    pub disk_root: PathBuf,
    /// Verify everything and report the plan, place nothing.
    pub dry_run: bool,
    pub place: PlaceOptions,
    /// Largest total size staged in memory before placing.
    pub memory_limit: u64,
    pub limits: Limits,
}

impl UnlockOptions {
    pub fn new(root: PathBuf) -> Self {
        UnlockOptions {
            host: None,
            chooser: Default::default(),
            stages: StageSel::All,
            root,
            disk_root: PathBuf::from("/"),
            dry_run: false,
            place: PlaceOptions {
                force: false,
                chown: rustix::process::geteuid().is_root(),
            },
            memory_limit: 32 << 20,
            limits: Limits::default(),
        }
    }
}

/// What happened (or, in a dry run, would happen) to one item.
#[derive(Debug, Clone, Serialize)]
pub struct Placed {
    /// Where it lands on this system.
    #[serde(serialize_with = "crate::escape::json::serialize_path")]
    pub path: PathBuf,
    pub target: String,
    pub stage: &'static str,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// `create`, `replace`, or `exists` (an existing directory, kept).
    pub action: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub host: Option<String>,
    pub dry_run: bool,
    pub items: Vec<Placed>,
    /// Bytes of all hosts' files verified.
    pub verified_bytes: u64,
    /// Temporaries an earlier, killed run left beside the targets: removed (in a dry run,
    /// found).
    #[serde(serialize_with = "crate::escape::json::serialize_paths")]
    pub swept: Vec<PathBuf>,
    /// Files an earlier, killed run had replaced with `--force` and whose originals were put
    /// back (in a dry run: would be).
    pub restored: Vec<PathBuf>,
    /// Temporary folders an earlier, killed run left that could not be removed (another file
    /// system mounted inside, a permission error), and why.
    pub not_swept: Vec<crate::place::NotSwept>,
}

/// Checks that can fail before a passphrase is asked for.
pub fn precheck(opts: &UnlockOptions, require_mount_point: bool) -> Result<()> {
    if !opts.stages.includes(Stage::Root) {
        return Ok(());
    }
    match is_mount_point(&opts.root) {
        Err(e) => Err(Error::Refused {
            why: format!("target root {} cannot be used: {e}", opts.root.display()),
            hint: Some(format!(
                "create and mount the target first, e.g. `mount /dev/disk/by-label/nixos {}`",
                opts.root.display()
            )),
        }),
        Ok(false) if require_mount_point => Err(Error::Refused {
            why: format!("{} is not a mount point", opts.root.display()),
            hint: Some(format!(
                "mount the installed system's root at {} first (otherwise the keys land in the live system's RAM and vanish on reboot), or pass --root-not-mountpoint",
                opts.root.display()
            )),
        }),
        Ok(_) => read_write(opts).and_then(|()| writable(opts)),
    }
}

/// A target root mounted read-only fails every placement, as root too: say so before the
/// passphrase, and give a dry run the same verdict (it writes nothing, so it would not find
/// out by writing).
fn read_write(opts: &UnlockOptions) -> Result<()> {
    let ro = rustix::fs::statvfs(&opts.root)
        .is_ok_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    if !ro {
        return Ok(());
    }
    Err(Error::Refused {
        why: format!("{} is mounted read-only", opts.root.display()),
        hint: Some(format!(
            "remount it read-write (`{}`), then run the same command again",
            crate::staging::as_root(&format!("mount -o remount,rw {}", opts.root.display()))
        )),
    })
}

/// Without root, a target root this user cannot write to fails every placement: say so
/// before the passphrase and the key derivation, not after (a dry run gives the same verdict).
fn writable(opts: &UnlockOptions) -> Result<()> {
    if opts.place.chown {
        return Ok(());
    }
    match rustix::fs::access(&opts.root, rustix::fs::Access::WRITE_OK) {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::Refused {
            why: format!(
                "{} is not writable by this user: {}",
                opts.root.display(),
                std::io::Error::from(e)
            ),
            hint: Some(format!(
                "vault places the installed system's files as root: run it with sudo (`{}`)",
                crate::staging::as_root(&format!("vault unlock --root {}", opts.root.display()))
            )),
        }),
    }
}

/// Verifies the payload and places the chosen items. Nothing is placed unless the whole
/// payload authenticated and matched its manifest.
pub fn unlock<R: Read>(payload: Payload<R>, name: &Path, opts: &UnlockOptions) -> Result<Report> {
    unlock_inner(payload, name, opts, None)
}

/// `vault unlock --stage disk`: places the disk-stage items (`opts.stages` must be
/// [`StageSel::Disk`]) and keeps the chosen host's root-stage items in `stager`, which is
/// committed only once the whole payload verified and before the disk items are made visible.
pub fn unlock_and_stage<R: Read>(
    payload: Payload<R>,
    name: &Path,
    opts: &UnlockOptions,
    mut stager: Stager,
) -> Result<(Report, usize)> {
    debug_assert_eq!(opts.stages, StageSel::Disk);
    let report = unlock_inner(payload, name, opts, Some(&mut stager))?;
    Ok((report, stager.len()))
}

fn unlock_inner<R: Read>(
    payload: Payload<R>,
    name: &Path,
    opts: &UnlockOptions,
    stager: Option<&mut Stager>,
) -> Result<Report> {
    let probe = payload.probe();
    let mut sink = UnlockSink {
        opts,
        host: None,
        placers: BTreeMap::new(),
        memory: None,
        report: Vec::new(),
        stager,
        swept: Vec::new(),
        restored: Vec::new(),
        not_swept: Vec::new(),
        in_place: Default::default(),
    };
    // Three threads: this one decrypts, a second decompresses, a third verifies and places
    // (see walk_pipelined); the writer and its flusher are two more.
    let walked = read_ahead(payload, |plain| {
        walk_pipelined(plain, name, &opts.limits, Some(&probe), &mut sink)
    })
    .unwrap_or_else(|_| {
        Err(Error::BadPayload {
            path: name.to_path_buf(),
            why: "the decompressing thread panicked".into(),
        })
    });
    let manifest = match walked {
        Ok(m) => m,
        Err(e) => {
            let left = sink.rollback();
            return Err(with_leftovers(crate::interrupt::explain(e), left));
        }
    };
    let verified_bytes = manifest.items.iter().map(|i| i.size).sum();
    if !opts.dry_run {
        // The disk items are committed first, then the root items become `staged/`: a run
        // killed in between leaves the disk items placed and an `incoming` folder the next
        // run wipes, never a staged area whose disk items are missing. If staging fails, the
        // disk items are rolled back.
        let stager = sink.stager.take();
        let stage = || stager.map_or(Ok(()), |st| st.commit().map(drop));
        sink.finish(stage).map_err(crate::interrupt::explain)?;
    }
    Ok(Report {
        host: sink.host,
        dry_run: opts.dry_run,
        items: sink.report,
        verified_bytes,
        swept: sink.swept,
        restored: sink.restored,
        not_swept: sink.not_swept,
    })
}

/// Reads the manifest only, verifying the whole payload (`vault inspect`).
pub fn inspect<R: Read>(
    payload: Payload<R>,
    name: &Path,
    limits: &Limits,
) -> Result<BundleManifest> {
    let probe = payload.probe();
    walk_pipelined(
        crate::archive::read::buffered(payload),
        name,
        limits,
        Some(&probe),
        &mut crate::archive::read::Discard,
    )
}

/// Picks the host: the one asked for (always), the only one, or among several the one this
/// machine's identity matches, else the user's pick from the host menu
/// ([`crate::identity::choose`]).
pub fn choose_host(manifest: &BundleManifest, opts: &UnlockOptions) -> Result<Option<String>> {
    let chooser = &opts.chooser;
    match opts.host.as_deref() {
        Some(h) if manifest.hosts.iter().any(|x| x == h) => {
            crate::identity::choose::warn_if_other(manifest, h, "as --host says", chooser);
            Ok(Some(h.to_owned()))
        }
        Some(h) => Err(Error::Host(format!(
            "host {h} is not in this bundle (it has: {})",
            list_or_none(&manifest.hosts)
        ))),
        None => match manifest.hosts.as_slice() {
            [] => Ok(None),
            [one] => crate::identity::choose::choose_only(manifest, one, chooser).map(Some),
            _ => {
                let files = |h: &str| {
                    manifest
                        .items
                        .iter()
                        .filter(|i| {
                            i.kind == Kind::File && i.is_for(h) && opts.stages.includes(i.stage)
                        })
                        .count()
                };
                crate::identity::choose::choose(manifest, chooser, opts.dry_run, files).map(Some)
            }
        },
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "no hosts, only shared entries".into()
    } else {
        v.join(", ")
    }
}
