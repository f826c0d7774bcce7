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
use crate::{Error, Result};

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
        payload,
        name,
        limits,
        Some(&probe),
        &mut crate::archive::read::Discard,
    )
}

/// Refuses when something is in the way: links and directories always, existing files
/// without `force`. Nothing has been written when this is called. `vault place` refuses the
/// same way.
pub(crate) fn refuse_conflicts(conflicts: &[Conflict], force: bool) -> Result<()> {
    refuse_conflicts_with(
        conflicts,
        force,
        "add --force to replace them (the old files are removed, no copy is kept)",
        "remove or fix those paths in the target, then run the same command again".into(),
    )
}

/// The refusal for `conflicts` that block (links always, existing files without `--force`),
/// with the hint for each case: `force_hint` when only existing files are in the way.
pub(crate) fn refuse_conflicts_with(
    conflicts: &[Conflict],
    force: bool,
    force_hint: &str,
    fix_hint: String,
) -> Result<()> {
    let blocking: Vec<&Conflict> = conflicts.iter().filter(|c| c.what.blocks(force)).collect();
    if blocking.is_empty() {
        return Ok(());
    }
    let only_existing = blocking.iter().all(|c| c.what == ConflictKind::Exists);
    let list: String = blocking
        .iter()
        .map(|c| format!("\n  {} {}", c.path.display(), c.what.describe()))
        .collect();
    Err(Error::Refused {
        why: format!("nothing was written; in the way:{list}"),
        hint: Some(if only_existing {
            force_hint.into()
        } else {
            fix_hint
        }),
    })
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

/// Reads a file item into one zeroizing buffer of its declared size, allocated up front: a
/// buffer that grew would leave freed copies of the secret behind. The declared size is
/// bounded here: memory staging is chosen only when all wanted files fit the memory limit.
/// The reader stops at the declared size; fewer bytes are reported by the walker.
fn read_staged(item: &Item, data: &mut dyn Read) -> Result<Zeroizing<Vec<u8>>> {
    let fail = |e: std::io::Error| Error::io("cannot read bundle data for", &item.target, e);
    let size = usize::try_from(item.size)
        .map_err(|_| fail(std::io::Error::other("the file is too large for memory")))?;
    let mut buf = Zeroizing::new(Vec::new());
    buf.try_reserve_exact(size).map_err(|_| {
        fail(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("cannot allocate {size} bytes to stage it"),
        ))
    })?;
    buf.resize(size, 0);
    let mut filled = 0;
    while filled < size {
        match data.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// An item staged in memory: (index, item, contents for files).
type InMemory = (usize, Item, Option<Zeroizing<Vec<u8>>>);

struct UnlockSink<'a> {
    opts: &'a UnlockOptions,
    host: Option<String>,
    placers: BTreeMap<Stage, Placer>,
    /// Staged contents when the payload fits in memory: (index, contents).
    memory: Option<Vec<InMemory>>,
    report: Vec<Placed>,
    /// `--stage disk`: keeps the root-stage items for `vault place`.
    stager: Option<&'a mut Stager>,
    swept: Vec<PathBuf>,
    restored: Vec<PathBuf>,
    /// Targets that already hold exactly what would be placed: left alone.
    in_place: std::collections::BTreeSet<(Stage, String)>,
}

impl UnlockSink<'_> {
    fn root_for(&self, stage: Stage) -> &Path {
        match stage {
            Stage::Disk => &self.opts.disk_root,
            Stage::Root => &self.opts.root,
        }
    }

    fn wanted(&self, item: &Item) -> bool {
        self.opts.stages.includes(item.stage)
            && match &self.host {
                Some(h) => item.is_for(h),
                None => item.host.is_none(),
            }
    }

    fn placer(&mut self, stage: Stage) -> Result<&mut Placer> {
        if !self.placers.contains_key(&stage) {
            let p = Placer::new(self.root_for(stage), self.opts.place)?;
            self.placers.insert(stage, p);
        }
        Ok(self.placers.get_mut(&stage).expect("inserted above"))
    }

    /// Undoes everything placed so far, in every stage; what could not be undone.
    fn rollback(&mut self) -> Vec<PathBuf> {
        self.placers
            .values_mut()
            .flat_map(Placer::rollback)
            .collect()
    }

    /// Places what was staged in memory, commits every placer, then runs `then` (the
    /// staging area's commit); if a later step fails, the earlier ones are rolled back too.
    fn finish(&mut self, then: impl FnOnce() -> Result<()>) -> Result<()> {
        if let Err(e) = self.place_from_memory() {
            let left = self.rollback();
            return Err(with_leftovers(e, left));
        }
        let stages: Vec<Stage> = self.placers.keys().copied().collect();
        for (i, s) in stages.iter().enumerate() {
            if let Err(e) = self.placers.get_mut(s).map_or(Ok(()), Placer::commit) {
                // This stage rolled itself back; the ones before it are undone too.
                let mut left = Vec::new();
                for done in &stages[..i] {
                    if let Some(p) = self.placers.get_mut(done) {
                        left.extend(p.rollback());
                    }
                }
                return Err(with_leftovers(e, left));
            }
        }
        if let Err(e) = then() {
            let left = self.rollback();
            return Err(with_leftovers(e, left));
        }
        // Every file is in place and durable: from here on a signal changes nothing.
        crate::interrupt::commit_point();
        // Complete: only now do the files --force replaced go.
        for p in self.placers.values_mut() {
            p.release();
        }
        Ok(())
    }

    fn place_from_memory(&mut self) -> Result<()> {
        let Some(staged) = self.memory.take() else {
            return Ok(());
        };
        for (_, item, data) in staged {
            let placer = self.placer(item.stage)?;
            match (item.kind, data) {
                (Kind::Dir, _) => placer.dir(&item.target, item.mode, item.uid, item.gid)?,
                (Kind::File, Some(data)) => placer.file(
                    &item.target,
                    item.mode,
                    item.uid,
                    item.gid,
                    &mut data.as_slice(),
                )?,
                (Kind::File, None) => unreachable!("files are staged with contents"),
            }
        }
        Ok(())
    }
}

impl Sink for UnlockSink<'_> {
    fn manifest(&mut self, manifest: &BundleManifest) -> Result<()> {
        self.host = choose_host(manifest, self.opts)?;
        if let Some(st) = self.stager.as_deref_mut() {
            st.set_host(self.host.clone());
        }
        let wanted: Vec<&Item> = manifest.items.iter().filter(|i| self.wanted(i)).collect();

        // What a killed earlier run left beside these targets goes first (its originals back
        // where they were), so that the check below sees the target as it really is. Then
        // refuse before writing anything: links in the way, and existing files without
        // --force. A dry run reaches the same verdict here and stops before writing.
        let mut conflicts: Vec<Conflict> = Vec::new();
        for stage in [Stage::Disk, Stage::Root] {
            let items: Vec<&Item> = wanted
                .iter()
                .copied()
                .filter(|i| i.stage == stage)
                .collect();
            if items.is_empty() {
                continue;
            }
            let mut placer = Placer::new(self.root_for(stage), self.opts.place)?;
            let files = items.iter().copied().filter(|i| i.kind == Kind::File);
            for s in placer.sweep_stale(files, self.opts.dry_run) {
                match s.what {
                    SweptKind::Removed => self.swept.push(s.path),
                    SweptKind::Restored(at) => self.restored.push(at),
                }
            }
            let found = placer.check(items.iter().copied());
            for i in &items {
                let path = placer.display_path(&i.target);
                let action = match (
                    i.kind,
                    found.iter().find(|c| c.path == path).map(|c| c.what),
                ) {
                    (_, Some(ConflictKind::InPlace)) => {
                        self.in_place.insert((stage, i.target.clone()));
                        "in place"
                    }
                    (Kind::Dir, None) if path.is_dir() => "exists",
                    (_, Some(ConflictKind::Exists)) => "replace",
                    (_, None) => "create",
                    (_, Some(_)) => "refused",
                };
                self.report.push(Placed {
                    path,
                    target: i.target.clone(),
                    stage: stage.as_str(),
                    kind: i.kind,
                    mode: i.mode,
                    uid: i.uid,
                    gid: i.gid,
                    size: i.size,
                    action,
                });
            }
            conflicts.extend(found);
        }
        refuse_conflicts(&conflicts, self.opts.place.force)?;
        let total: u64 = wanted.iter().map(|i| i.size).sum();
        self.memory = (total <= self.opts.memory_limit).then(Vec::new);
        Ok(())
    }

    fn wants(&self, _index: usize, item: &Item) -> bool {
        !self.opts.dry_run
            && ((self.wanted(item) && !self.in_place.contains(&(item.stage, item.target.clone())))
                || self.stager.as_deref().is_some_and(|s| s.wants(item)))
    }

    fn dir(&mut self, index: usize, item: &Item) -> Result<()> {
        if let Some(st) = self.stager.as_deref_mut().filter(|s| s.wants(item)) {
            return st.dir(item);
        }
        match &mut self.memory {
            Some(m) => {
                m.push((index, item.clone(), None));
                Ok(())
            }
            None => self
                .placer(item.stage)?
                .dir(&item.target, item.mode, item.uid, item.gid),
        }
    }

    fn file(&mut self, index: usize, item: &Item, data: &mut dyn Read) -> Result<()> {
        if let Some(st) = self.stager.as_deref_mut().filter(|s| s.wants(item)) {
            return st.file(item, data);
        }
        match &mut self.memory {
            Some(m) => {
                m.push((index, item.clone(), Some(read_staged(item, data)?)));
                Ok(())
            }
            None => {
                self.placer(item.stage)?
                    .file(&item.target, item.mode, item.uid, item.gid, data)
            }
        }
    }
}

#[cfg(test)]
mod staging_tests {
    use super::*;

    #[test]
    fn staged_files_are_read_into_one_buffer_of_their_size() {
        // 3 MiB in 64 KiB reads: a buffer that grew would have capacity 4 MiB (and would have
        // freed 1 and 2 MiB copies unzeroed on the way).
        let size = 3 << 20;
        let item = Item {
            host: None,
            stage: Stage::Root,
            kind: Kind::File,
            target: "/big".into(),
            mode: 0o600,
            uid: 0,
            gid: 0,
            size: size as u64,
            sha256: Some("0".repeat(64)),
        };
        struct Chunks(usize);
        impl Read for Chunks {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.0).min(64 << 10);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let buf = read_staged(&item, &mut Chunks(size)).unwrap();
        assert_eq!((buf.len(), buf.capacity()), (size, size));
        assert!(buf.iter().all(|&b| b == 7));
        // Fewer bytes than declared: kept as read (the walker refuses the count).
        let buf = read_staged(&item, &mut Chunks(10)).unwrap();
        assert_eq!(buf.len(), 10);
    }
}
