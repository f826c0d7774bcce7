//! The sink `vault unlock` walks the verified payload into: each item straight to its
//! placer, or into zeroizing memory when the whole run is staged there first.

use super::*;
use crate::place::{refuse_conflicts, NotSwept};

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

pub(super) struct UnlockSink<'a> {
    pub(super) opts: &'a UnlockOptions,
    pub(super) host: Option<String>,
    pub(super) placers: BTreeMap<Stage, Placer>,
    /// Staged contents when the payload fits in memory: (index, contents).
    pub(super) memory: Option<Vec<InMemory>>,
    pub(super) report: Vec<Placed>,
    /// `--stage disk`: keeps the root-stage items for `vault place`.
    pub(super) stager: Option<&'a mut Stager>,
    pub(super) swept: Vec<PathBuf>,
    pub(super) restored: Vec<PathBuf>,
    pub(super) not_swept: Vec<NotSwept>,
    /// Targets that already hold exactly what would be placed: left alone.
    pub(super) in_place: std::collections::BTreeSet<(Stage, String)>,
}

impl UnlockSink<'_> {
    pub(super) fn root_for(&self, stage: Stage) -> &Path {
        match stage {
            Stage::Disk => &self.opts.disk_root,
            Stage::Root => &self.opts.root,
        }
    }

    pub(super) fn wanted(&self, item: &Item) -> bool {
        self.opts.stages.includes(item.stage)
            && match &self.host {
                Some(h) => item.is_for(h),
                None => item.host.is_none(),
            }
    }

    pub(super) fn placer(&mut self, stage: Stage) -> Result<&mut Placer> {
        if !self.placers.contains_key(&stage) {
            let p = Placer::new(self.root_for(stage), self.opts.place)?;
            self.placers.insert(stage, p);
        }
        Ok(self.placers.get_mut(&stage).expect("inserted above"))
    }

    /// Undoes everything placed so far, in every stage; what could not be undone.
    pub(super) fn rollback(&mut self) -> Vec<PathBuf> {
        self.placers
            .values_mut()
            .flat_map(Placer::rollback)
            .collect()
    }

    /// Places what was staged in memory, commits every placer, then runs `then` (the
    /// staging area's commit); if a later step fails, the earlier ones are rolled back too.
    pub(super) fn finish(&mut self, then: impl FnOnce() -> Result<()>) -> Result<()> {
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

    pub(super) fn place_from_memory(&mut self) -> Result<()> {
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
        // Before anything opens a folder: too few open files is refused like a full target.
        let placed_now = wanted
            .iter()
            .filter(|i| !self.stager.as_deref().is_some_and(|s| s.wants(i)));
        crate::place::check_open_files(placed_now.map(|i| (i.stage, *i)))?;

        // What a killed earlier run left beside these targets goes first (its originals back
        // where they were), so that the check below sees the target as it really is. Then
        // refuse before writing anything: links in the way, and existing files without
        // --force. A dry run reaches the same verdict here and stops before writing.
        let mut conflicts: Vec<Conflict> = Vec::new();
        // What the stages need on each file system (judged after the conflicts).
        let mut room = crate::place::Room::default();
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
                    SweptKind::NotRemoved(why) => {
                        self.not_swept.push(NotSwept { path: s.path, why })
                    }
                }
            }
            let found = placer.check(items.iter().copied());
            placer.count_room(&mut room, items.iter().copied(), &found);
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
                // A folder kept as it is reports what it is, not what the bundle asked for
                // (a world-writable ~/.ssh must not read as 0700).
                let kept = (action == "exists")
                    .then(|| std::fs::symlink_metadata(&path).ok())
                    .flatten();
                let (mode, uid, gid) = kept.map_or((i.mode, i.uid, i.gid), |m| {
                    use std::os::unix::fs::MetadataExt;
                    (m.mode() & 0o7777, m.uid(), m.gid())
                });
                self.report.push(Placed {
                    path,
                    target: i.target.clone(),
                    stage: stage.as_str(),
                    kind: i.kind,
                    mode,
                    uid,
                    gid,
                    size: i.size,
                    action,
                });
            }
            conflicts.extend(found);
        }
        refuse_conflicts(&conflicts, self.opts.place.force)?;
        room.check()?;
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
