//! `vault repack`: a bundle's items, read and verified into memory, written again as a new
//! bundle (a new file key, a new passphrase, the same bytes, modes, owners and targets). The
//! contents never touch the disk in plaintext: they stay in zeroizing buffers until the new
//! bundle is written.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use age_core::secrecy::SecretString;
use zeroize::Zeroizing;

use super::PackOptions;
use crate::archive::read::Sink;
use crate::archive::{self, BundleManifest, Item, Kind, Limits};
use crate::bundle::Payload;
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
    let manifest =
        archive::read::walk_pipelined(payload, name, &Limits::default(), Some(&probe), &mut sink)?;
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
            created_by: format!("vault {}", env!("CARGO_PKG_VERSION")),
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

/// Refuses an output that is the input bundle or one of `inputs` (even with `--force`), and
/// an existing one without `--force`.
pub fn check_output(
    bundle: &Path,
    inputs: &[(&str, &Path)],
    out: &Path,
    force: bool,
) -> Result<()> {
    let Ok(existing) = fs::metadata(out) else {
        return match fs::symlink_metadata(out) {
            Ok(_) if !force => Err(super::checks::exists(out)),
            _ => Ok(()),
        };
    };
    let id = (existing.dev(), existing.ino());
    let same = |p: &Path| fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == id);
    for (what, p) in std::iter::once(&("bundle being repacked", bundle)).chain(inputs) {
        if same(p) {
            return Err(Error::Declined {
                why: format!(
                    "refusing to write the bundle to {}: it is the {what} {}",
                    out.display(),
                    p.display()
                ),
                hint: Some("choose another output with -o FILE".into()),
            });
        }
    }
    if force {
        Ok(())
    } else {
        Err(super::checks::exists(out))
    }
}
