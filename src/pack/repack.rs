//! `vault repack`: a bundle's items, read and verified into memory, written again as a new
//! bundle (a new file key, a new passphrase, the same bytes, modes, owners and targets). The
//! contents never touch the disk in plaintext: they stay in zeroizing buffers until the new
//! bundle is written.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use age_core::secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::differences::{compare, Difference, DifferenceKind};
use super::PackOptions;
use crate::archive::read::Sink;
use crate::archive::{self, BundleManifest, Item, Kind, Limits};
use crate::bundle::Payload;
use crate::manifest::Manifest;
use crate::{Error, Result};

/// A bundle's verified contents.
pub struct Contents {
    pub manifest: BundleManifest,
    /// For each item, its bytes (`None` for directories).
    data: Vec<Option<Zeroizing<Vec<u8>>>>,
}

/// Collects every file in memory, within a budget set from the manifest before any is read.
struct Collect {
    name: PathBuf,
    budget: Option<u64>,
    data: Vec<Option<Zeroizing<Vec<u8>>>>,
}

impl Sink for Collect {
    fn manifest(&mut self, m: &BundleManifest) -> Result<()> {
        let total: u64 = m.items.iter().map(|i| i.size).sum();
        if let Some(budget) = self.budget.filter(|&b| total > b) {
            return Err(Error::Declined {
                why: format!(
                    "{}: its files total {total} bytes, more than half the memory available here ({budget} bytes); repack holds them in memory so they are never written in plaintext",
                    self.name.display()
                ),
                hint: Some("run it on a machine with more free memory".into()),
            });
        }
        self.data = m.items.iter().map(|_| None).collect();
        Ok(())
    }
    fn wants(&self, _: usize, _: &Item) -> bool {
        true
    }
    fn dir(&mut self, _: usize, _: &Item) -> Result<()> {
        Ok(())
    }
    fn file(&mut self, index: usize, item: &Item, data: &mut dyn Read) -> Result<()> {
        // Exactly the declared size up front (bounded by the budget above): growing a
        // zeroizing Vec would leave the old buffers behind unzeroed.
        let size = usize::try_from(item.size).map_err(|_| Error::Declined {
            why: format!("{} is too large for this machine", item.target),
            hint: None,
        })?;
        let mut buf = Zeroizing::new(Vec::with_capacity(size));
        data.take(item.size)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("cannot read", &self.name, e))?;
        if let Some(slot) = self.data.get_mut(index) {
            *slot = Some(buf);
        }
        Ok(())
    }
}

/// Reads and verifies the whole payload (every chunk, every hash) into memory.
pub fn read_contents<R: Read>(payload: Payload<R>, name: &Path) -> Result<Contents> {
    let probe = payload.probe();
    let mut sink = Collect {
        name: name.to_path_buf(),
        budget: crate::bundle::argon2id::mem_available().map(|b| b / 2),
        data: Vec::new(),
    };
    let manifest = archive::read::walk_pipelined(
        archive::read::buffered(payload),
        name,
        &Limits::default(),
        Some(&probe),
        &mut sink,
    )?;
    Ok(Contents {
        manifest,
        data: sink.data,
    })
}

impl Contents {
    /// Writes these contents to `out` as a new bundle for `passphrase`, its file key also
    /// wrapped to `recovery`.
    pub fn write(
        &self,
        out: &Path,
        recovery: &[String],
        passphrase: SecretString,
        opts: PackOptions,
    ) -> Result<u64> {
        let manifest = BundleManifest {
            created_by: format!("vault {}", env!("CARGO_PKG_VERSION")).into(),
            recovery_recipients: recovery.to_vec(),
            ..self.manifest.clone()
        };
        manifest
            .validate(&Limits::default())
            .map_err(|why| Error::Declined {
                why: format!("cannot repack: {why}"),
                hint: None,
            })?;
        let data: Vec<Option<&[u8]>> = self
            .data
            .iter()
            .zip(&manifest.items)
            .map(|(d, i)| match i.kind {
                Kind::File => d.as_deref().map(Vec::as_slice),
                Kind::Dir => None,
            })
            .collect();
        super::write_atomically(
            out,
            &manifest.recovery_recipients,
            passphrase,
            opts,
            |pipe| archive::write::write_contents(pipe, &manifest, &data, opts.compression),
        )
    }
}

/// The items of an updated manifest: what the new bundle holds, and the bundle items left out.
pub struct Rebuilt {
    pub contents: Contents,
    /// Items of the old bundle with no item of the same host and target in the new one.
    pub dropped: Vec<Item>,
    /// How many items came from source files on disk (the rest came from the old bundle).
    pub from_disk: usize,
    /// Every difference between the old bundle and the manifest with its sources.
    pub differences: Vec<Difference>,
}

impl Contents {
    /// The items `m` lists (all its hosts), with its targets, modes, owners and stages. An
    /// entry whose source exists is read from disk (a directory recursively, as `vault pack`
    /// does); one whose source is missing takes the old bundle's item with the same host and
    /// target (a directory with everything under it). An entry with neither is an error
    /// naming its line. Every difference between the bundle and the manifest is listed.
    pub fn rebuild(self, m: &Manifest) -> Result<Rebuilt> {
        let mut items: Vec<Item> = Vec::new();
        let mut data: Vec<Option<Zeroizing<Vec<u8>>>> = Vec::new();
        let mut from_disk = 0;
        let mut differences = Vec::new();
        let name = m.path.display().to_string();
        let bundle_item = |i: &Item| {
            self.manifest
                .items
                .iter()
                .find(|o| o.host == i.host && o.target == i.target)
        };
        let mut old: Vec<Option<Zeroizing<Vec<u8>>>> = self.data;
        let hosts: Vec<String> = m.hosts.keys().cloned().collect();
        let entries = m.shared.iter().map(|e| (None, e)).chain(
            m.hosts
                .iter()
                .flat_map(|(h, host)| host.entries.iter().map(move |e| (Some(h), e))),
        );
        for (host, e) in entries {
            if fs::metadata(&e.source).is_ok() {
                let mut new_items = Vec::new();
                let mut sources = Vec::new();
                // Read below, not hashed while walking.
                super::expand(m, e, host, &mut new_items, &mut sources, &mut |_, _| {})?;
                for (mut item, (source, _)) in new_items.into_iter().zip(sources) {
                    let bytes = match &source {
                        Some(p) => {
                            let b = read_exact_file(p)?;
                            item.size = b.len() as u64;
                            item.sha256 = Some(hex::encode(Sha256::digest(&b[..])));
                            Some(b)
                        }
                        None => None,
                    };
                    match bundle_item(&item) {
                        None => differences.push(Difference::new(
                            &item,
                            DifferenceKind::New,
                            "not in the bundle".into(),
                        )),
                        Some(old) => {
                            let src = source.as_deref().unwrap_or(&e.source);
                            if let Some(what) = compare(old, &item, Some(src), &name) {
                                differences.push(Difference::new(
                                    &item,
                                    DifferenceKind::Differs,
                                    what,
                                ));
                            }
                        }
                    }
                    from_disk += 1;
                    items.push(item);
                    data.push(bytes);
                }
                continue;
            }
            let host = host.cloned();
            let at = |msg: String| Error::manifest(&m.path, format!("line {}: {msg}", e.line));
            let top = self
                .manifest
                .items
                .iter()
                .position(|i| i.host == host && i.target == e.target)
                .ok_or_else(|| {
                    at(format!(
                        "source {} does not exist, and the bundle has no item {}{}",
                        e.source.display(),
                        e.target,
                        host.as_deref()
                            .map_or(" shared by every host".to_owned(), |h| format!(
                                " for host {h}"
                            ))
                    ))
                })?;
            let top_kind = self.manifest.items[top].kind;
            if top_kind == Kind::File && e.file_mode.is_some() {
                return Err(at(format!(
                    "file_mode applies to directory entries, but the bundle's {} is a file (use mode)",
                    e.target
                )));
            }
            let under = format!("{}/", e.target);
            let mut taken = 0;
            // Each item under a missing directory is named: what a forger added there is
            // exactly what nothing else would show.
            let mut inside_items = Vec::new();
            for (i, old_item) in self.manifest.items.iter().enumerate() {
                let inside = i == top
                    || (top_kind == Kind::Dir
                        && old_item.host == host
                        && old_item.target.starts_with(&under));
                if !inside {
                    continue;
                }
                let mode = match (i == top, old_item.kind) {
                    (true, Kind::File) => e.mode.unwrap_or(super::DEFAULT_FILE_MODE),
                    (true, Kind::Dir) => e.mode.unwrap_or(old_item.mode),
                    (false, Kind::File) => e.file_mode.unwrap_or(old_item.mode),
                    (false, Kind::Dir) => old_item.mode,
                };
                let item = Item {
                    host: host.clone(),
                    stage: e.stage,
                    mode,
                    uid: e.uid,
                    gid: e.gid,
                    ..old_item.clone()
                };
                if let Some(what) = compare(old_item, &item, None, &name) {
                    differences.push(Difference::new(&item, DifferenceKind::Differs, what));
                }
                if i != top {
                    inside_items.push(Difference::new(
                        &item,
                        DifferenceKind::FromBundle,
                        format!(
                            "under {}, whose source {} is missing: taken from the bundle unchecked",
                            e.target,
                            e.source.display()
                        ),
                    ));
                }
                items.push(item);
                data.push(old.get_mut(i).and_then(Option::take));
                taken += 1;
            }
            let top_item = &self.manifest.items[top];
            differences.push(Difference::new(
                &Item {
                    host: host.clone(),
                    ..top_item.clone()
                },
                DifferenceKind::FromBundle,
                format!(
                    "its source {} is missing: {} taken from the bundle unchecked",
                    e.source.display(),
                    if top_kind == Kind::Dir {
                        format!(
                            "the directory and the {} item(s) under it, each named below,",
                            taken - 1
                        )
                    } else {
                        "its bytes".to_owned()
                    }
                ),
            ));
            differences.append(&mut inside_items);
        }
        // Parents before children, as `vault pack` orders them (docs/FORMAT.md §5).
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| items[a].target.cmp(&items[b].target));
        let mut sorted_items = Vec::with_capacity(items.len());
        let mut sorted_data = Vec::with_capacity(items.len());
        for i in order {
            sorted_items.push(items[i].clone());
            sorted_data.push(data[i].take());
        }
        let kept: std::collections::BTreeSet<(Option<&str>, &str)> = sorted_items
            .iter()
            .map(|i| (i.host.as_deref(), i.target.as_str()))
            .collect();
        let dropped: Vec<Item> = self
            .manifest
            .items
            .iter()
            .filter(|i| !kept.contains(&(i.host.as_deref(), i.target.as_str())))
            .cloned()
            .collect();
        for i in &dropped {
            differences.push(Difference::new(
                i,
                DifferenceKind::Dropped,
                format!("not in {name}"),
            ));
        }
        let manifest = BundleManifest {
            // Hosts and their identities come from the manifest, as the entries do.
            identities: crate::identity::of_hosts(m, &hosts),
            hosts,
            items: sorted_items,
            ..self.manifest
        };
        manifest
            .validate(&Limits::default())
            .map_err(|why| Error::manifest(&m.path, why))?;
        Ok(Rebuilt {
            contents: Contents {
                manifest,
                data: sorted_data,
            },
            dropped,
            from_disk,
            differences,
        })
    }
}

/// A source file's bytes, in one buffer sized up front (a buffer that grew would leave
/// unzeroed copies); a file that changes size while read is an error.
fn read_exact_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut f = fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let size = f
        .metadata()
        .map_err(|e| Error::io("cannot read", path, e))?
        .len();
    let cap = usize::try_from(size).map_err(|_| Error::Declined {
        why: format!("{} is too large for this machine", path.display()),
        hint: None,
    })?;
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    (&mut f)
        .take(size)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("cannot read", path, e))?;
    let mut more = [0u8; 1];
    let extra = f
        .read(&mut more)
        .map_err(|e| Error::io("cannot read", path, e))?;
    if buf.len() as u64 != size || extra != 0 {
        return Err(Error::io(
            "cannot read",
            path,
            std::io::Error::other(
                "the file changed while vault was reading it; run the command again",
            ),
        ));
    }
    Ok(buf)
}

/// Refuses an output that is the input bundle or one of `inputs` (even with `--force`), and
/// an existing one without `--force`.
pub fn check_output(
    bundle: &Path,
    inputs: &[(&str, &Path)],
    out: &Path,
    force: bool,
) -> Result<()> {
    use super::checks::{is_same, output_id, refuse_input, replace_if_forced};
    let Some(id) = output_id(out, force)? else {
        return Ok(());
    };
    for (what, p) in std::iter::once(&("bundle being repacked", bundle)).chain(inputs) {
        if is_same(p, id) {
            return Err(refuse_input(out, format!("the {what} {}", p.display())));
        }
    }
    replace_if_forced(out, force)
}
