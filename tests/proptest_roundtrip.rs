//! Property: any manifest of valid entries round-trips exactly. Random trees of files and
//! directories (random names, contents, modes, and owners when root, some disk-stage) are
//! written by the real payload writer and encrypted, then unlocked into an empty root:
//! every item is there with its exact contents, type, mode and owner, and nothing else
//! exists besides the parent directories vault had to create.

mod hostile;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use age_core::secrecy::SecretString;
use proptest::prelude::*;
use vault::archive::{write, BundleManifest, Item, Kind};
use vault::manifest::Stage;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[derive(Debug, Clone)]
struct Spec {
    path: Vec<String>,
    contents: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    disk: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec("[a-c]{1,2}|[.]?[A-Za-z0-9_ -]{1,12}", 1..4),
        prop::collection::vec(any::<u8>(), 0..3000),
        0u32..=0o777,
        0u32..70_000,
        0u32..70_000,
        prop::bool::weighted(0.15),
    )
        .prop_map(|(path, contents, mode, uid, gid, disk)| Spec {
            path,
            contents,
            mode,
            uid,
            gid,
            disk,
        })
}

/// Turns random specs into a valid manifest: unique targets, and anything that is an
/// ancestor of another target becomes a directory.
fn items(specs: Vec<Spec>) -> Vec<(Item, Vec<u8>)> {
    let root = is_root();
    let mut by_target: BTreeMap<(bool, String), Spec> = BTreeMap::new();
    for s in specs {
        let t = if s.disk {
            format!("/tmp/{}", s.path.join("/"))
        } else {
            format!("/{}", s.path.join("/"))
        };
        if s.path.iter().any(|c| c == "." || c == "..") {
            continue;
        }
        by_target.entry((s.disk, t)).or_insert(s);
    }
    let keys: Vec<(bool, String)> = by_target.keys().cloned().collect();
    by_target
        .into_iter()
        .map(|((disk, t), s)| {
            let prefix = format!("{t}/");
            let is_dir = keys
                .iter()
                .any(|(d, other)| *d == disk && other.starts_with(&prefix));
            // Without root, vault cannot write into a directory it made read-only for itself.
            let mode = if is_dir && !root {
                s.mode | 0o700
            } else {
                s.mode
            };
            let (uid, gid) = if root { (s.uid, s.gid) } else { (0, 0) };
            let base = hostile::file_item(&t, &s.contents);
            let item = Item {
                stage: if disk { Stage::Disk } else { Stage::Root },
                kind: if is_dir { Kind::Dir } else { Kind::File },
                mode,
                uid,
                gid,
                size: if is_dir { 0 } else { s.contents.len() as u64 },
                sha256: if is_dir { None } else { base.sha256 },
                ..base
            };
            (item, if is_dir { vec![] } else { s.contents })
        })
        .collect()
}

fn pack(items: &[(Item, Vec<u8>)], src: &Path) -> Vec<u8> {
    let m = BundleManifest {
        format: 1,
        created_by: "proptest".into(),
        hosts: vec![hostile::HOST.into()],
        items: items.iter().map(|(i, _)| i.clone()).collect(),
        recovery_recipients: Vec::new(),
        identities: Default::default(),
    };
    m.validate(&Default::default())
        .expect("generated manifest is valid");
    let sources: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(n, (i, d))| {
            (i.kind == Kind::File).then(|| {
                let p = src.join(n.to_string());
                std::fs::write(&p, d).unwrap();
                p
            })
        })
        .collect();
    let payload = write::write(
        Vec::new(),
        &m,
        &sources,
        write::Compression {
            level: 1,
            threads: 0,
        },
        &|_| {},
    )
    .unwrap();
    hostile::seal(&payload)
}

fn unlock(bundle: &[u8], root: &Path, live: &Path) {
    let name = Path::new("proptest.vault");
    let locked = vault::bundle::Locked::open(bundle, name).unwrap();
    let limits = vault::bundle::KdfLimits::for_this_machine();
    let key = locked
        .try_passphrase(&SecretString::from(hostile::PASSPHRASE.to_owned()), &limits)
        .unwrap()
        .expect("right passphrase");
    let payload = locked.decrypt(key).unwrap();
    let mut opts = vault::unlock::UnlockOptions::new(root.to_path_buf());
    opts.disk_root = live.to_path_buf();
    vault::unlock::unlock(payload, name, &opts).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_manifest_round_trips(specs in prop::collection::vec(spec(), 1..24)) {
        let items = items(specs);
        let t = tempfile::tempdir().unwrap();
        let (src, root, live) = (t.path().join("src"), t.path().join("mnt"), t.path().join("live"));
        for d in [&src, &root, &live] {
            std::fs::create_dir(d).unwrap();
        }
        let bundle = pack(&items, &src);
        unlock(&bundle, &root, &live);

        let mut expected: BTreeMap<String, ()> = BTreeMap::new();
        for (item, data) in &items {
            let base = if item.stage == Stage::Disk { &live } else { &root };
            let p = base.join(item.target.trim_start_matches('/'));
            let m = std::fs::symlink_metadata(&p).unwrap();
            prop_assert_eq!(m.mode() & 0o7777, item.mode, "{}", item.target);
            if is_root() {
                prop_assert_eq!((m.uid(), m.gid()), (item.uid, item.gid), "{}", item.target);
            }
            match item.kind {
                Kind::Dir => prop_assert!(m.is_dir(), "{}", item.target),
                Kind::File => {
                    prop_assert!(m.is_file(), "{}", item.target);
                    prop_assert_eq!(&std::fs::read(&p).unwrap(), data);
                }
            }
            // The target and its ancestors are the only paths allowed to exist.
            let mut t = item.target.as_str();
            loop {
                expected.insert(format!("{}{t}", item.stage.as_str()), ());
                match t.rfind('/') {
                    Some(0) | None => break,
                    Some(i) => t = &t[..i],
                }
            }
        }
        for (stage, base) in [("root", &root), ("disk", &live)] {
            for e in walkdir::WalkDir::new(base).min_depth(1) {
                let e = e.unwrap();
                let rel = format!("/{}", e.path().strip_prefix(base).unwrap().display());
                prop_assert!(
                    expected.contains_key(&format!("{stage}{rel}")),
                    "unexpected {} in the {} tree", rel, stage
                );
            }
        }
    }
}
