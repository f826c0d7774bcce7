//! Builds *validly encrypted* bundles with hostile payloads, byte by byte: raw tar headers
//! (so `..`, absolute names, links, devices, GNU long names and PAX records are possible),
//! zstd, then vault's own age encryption. A bundle built here authenticates with the test
//! passphrase, so whatever unlock refuses, it refuses for its contents, not its crypto.
//!
//! Also: a full listing of a tree (type, mode, owner, size, SHA-256, link target) to prove a
//! refused unlock changed nothing, and a runner for the real `vault` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use age_core::secrecy::SecretString;
use sha2::{Digest, Sha256};
use vault::archive::{BundleManifest, Item, Kind};
use vault::bundle::KdfParams;
use vault::manifest::Stage;

pub const PASSPHRASE: &str = "hostile test passphrase";
pub const HOST: &str = "h";

/// The cheapest Argon2id parameters the format allows, as the brief's tests use.
pub const KDF: KdfParams = KdfParams {
    m_kib: 8,
    t: 1,
    p: 1,
};

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A manifest item for a root-stage file of host [`HOST`] holding `data`.
pub fn file_item(target: &str, data: &[u8]) -> Item {
    Item {
        host: Some(HOST.into()),
        stage: Stage::Root,
        kind: Kind::File,
        target: target.into(),
        mode: 0o600,
        uid: 0,
        gid: 0,
        size: data.len() as u64,
        sha256: Some(sha256_hex(data)),
    }
}

pub fn dir_item(target: &str) -> Item {
    Item {
        kind: Kind::Dir,
        size: 0,
        sha256: None,
        mode: 0o755,
        ..file_item(target, b"")
    }
}

pub fn disk_item(target: &str, data: &[u8]) -> Item {
    Item {
        stage: Stage::Disk,
        ..file_item(target, data)
    }
}

pub fn manifest(items: Vec<Item>) -> BundleManifest {
    BundleManifest {
        format: 1,
        created_by: "hostile test".into(),
        hosts: vec![HOST.into()],
        items,
        recovery_recipients: Vec::new(),
        identities: Default::default(),
    }
}

pub fn manifest_json(m: &BundleManifest) -> Vec<u8> {
    serde_json::to_vec_pretty(m).expect("manifest serializes")
}

/// One raw tar member: a 512-byte header and its data, padded to 512.
pub struct Member {
    pub header: tar::Header,
    pub data: Vec<u8>,
}

impl Member {
    /// A member whose name bytes go into the header verbatim (tar's `set_path` would refuse
    /// `..`; a hostile packer does not use it).
    pub fn raw(name: &[u8], kind: tar::EntryType, data: &[u8]) -> Member {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().expect("gnu header");
            assert!(
                name.len() <= gnu.name.len(),
                "use gnu_long_name for long names"
            );
            gnu.name[..name.len()].copy_from_slice(name);
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        Member {
            header,
            data: data.to_vec(),
        }
    }

    pub fn file(name: &str, data: &[u8]) -> Member {
        Member::raw(name.as_bytes(), tar::EntryType::Regular, data)
    }

    pub fn dir(name: &str) -> Member {
        Member::raw(name.as_bytes(), tar::EntryType::Directory, b"")
    }

    /// The member for `item` as an honest packer writes it.
    pub fn for_item(item: &Item, data: &[u8]) -> Member {
        match item.kind {
            Kind::File => Member::file(&item.archive_path(), data),
            Kind::Dir => Member::dir(&item.archive_path()),
        }
    }

    pub fn link(name: &str, kind: tar::EntryType, target: &[u8]) -> Member {
        let mut m = Member::raw(name.as_bytes(), kind, b"");
        m.header.as_gnu_mut().expect("gnu").linkname[..target.len()].copy_from_slice(target);
        m.header.set_cksum();
        m
    }

    /// Rewrites the declared size without changing the data written.
    pub fn declared_size(mut self, size: u64) -> Member {
        self.header.set_size(size);
        self.header.set_cksum();
        self
    }

    pub fn with_mode(mut self, mode: u32) -> Member {
        self.header.set_mode(mode);
        self.header.set_cksum();
        self
    }

    /// A GNU long-name (`L`) member that renames the member after it to `name`.
    pub fn gnu_long_name(name: &[u8]) -> Member {
        let mut data = name.to_vec();
        data.push(0);
        Member::raw(b"././@LongLink", tar::EntryType::GNULongName, &data)
    }

    /// A PAX extended header (`x`) applying `records` to the member after it.
    pub fn pax(records: &[(&str, &[u8])]) -> Member {
        let mut data = Vec::new();
        for (k, v) in records {
            // "LEN key=value\n", where LEN counts itself.
            let body_len = k.len() + v.len() + 3;
            let mut len = body_len + 1;
            while format!("{len}").len() + body_len != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        Member::raw(b"././@PaxHeader", tar::EntryType::XHeader, &data)
    }

    /// A PAX extended header with `data` as it is, records or not.
    pub fn pax_raw(data: &[u8]) -> Member {
        Member::raw(b"././@PaxHeader", tar::EntryType::XHeader, data)
    }

    /// Edits raw header bytes (then fixes the checksum): `bytes` goes at `offset`.
    pub fn patched(mut self, offset: usize, bytes: &[u8]) -> Member {
        self.header.as_mut_bytes()[offset..offset + bytes.len()].copy_from_slice(bytes);
        self.header.set_cksum();
        self
    }

    /// A pre-POSIX (v7) header: no ustar magic and version.
    pub fn without_magic(self) -> Member {
        self.patched(257, &[0u8; 8])
    }

    /// A raw type flag byte, e.g. the pre-POSIX NUL.
    pub fn with_type_byte(self, kind: u8) -> Member {
        self.patched(156, &[kind])
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.header.as_bytes());
        out.extend_from_slice(&self.data);
        let pad = (512 - self.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
}

/// The tar stream: the manifest member, then `members`, then the two zero blocks.
pub fn tar_bytes(manifest: &[u8], members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    Member::file(vault::archive::MANIFEST_NAME, manifest).write_to(&mut out);
    for m in members {
        m.write_to(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The tar stream with `end` in place of the end-of-archive marker.
pub fn tar_bytes_ending(manifest: &[u8], members: &[Member], end: &[u8]) -> Vec<u8> {
    let mut out = tar_bytes(manifest, members);
    out.truncate(out.len() - 1024);
    out.extend_from_slice(end);
    out
}

pub fn zstd_bytes(plain: &[u8]) -> Vec<u8> {
    zstd::encode_all(plain, 1).expect("zstd")
}

/// Encrypts `payload` (already compressed, or deliberately not) as a vault bundle.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = vault::bundle::encrypt(&mut out, SecretString::from(PASSPHRASE.to_owned()), KDF)
        .expect("encrypt");
    w.write_all(payload).expect("write payload");
    w.finish().expect("finish");
    out
}

/// An honest bundle holding `items` with their contents (`None` for directories).
pub fn honest(items: Vec<(Item, Option<Vec<u8>>)>) -> Vec<u8> {
    let m = manifest(items.iter().map(|(i, _)| i.clone()).collect());
    let members: Vec<Member> = items
        .iter()
        .map(|(i, d)| Member::for_item(i, d.as_deref().unwrap_or(b"")))
        .collect();
    seal(&zstd_bytes(&tar_bytes(&manifest_json(&m), &members)))
}

/// The bundle for a manifest and members as given.
pub fn bundle(m: &BundleManifest, members: &[Member]) -> Vec<u8> {
    seal(&zstd_bytes(&tar_bytes(&manifest_json(m), members)))
}

/// Everything about a tree that placement could change: type, mode, owner, size, contents
/// (SHA-256), link targets, device numbers. Links are listed, never followed.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.expect("walk");
        let m = e.path().symlink_metadata().expect("lstat");
        let ft = m.file_type();
        let what = if ft.is_file() {
            format!(
                "file {}",
                sha256_hex(&std::fs::read(e.path()).expect("read"))
            )
        } else if ft.is_dir() {
            "dir".into()
        } else if ft.is_symlink() {
            format!(
                "link -> {}",
                std::fs::read_link(e.path()).expect("readlink").display()
            )
        } else if ft.is_fifo() {
            "fifo".into()
        } else {
            format!("special {}", m.rdev())
        };
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        out.insert(
            format!("/{rel}"),
            format!("{what} {:o} {}:{} {}", m.mode(), m.uid(), m.gid(), m.len()),
        );
    }
    out
}

/// A scratch installer: `mnt/` (the target root, pre-populated), `live/` (the disk-stage
/// root, with `tmp/` and `run/`), `outside/` (a canary the bundle must never reach), and the
/// passphrase file.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("pw"), format!("{PASSPHRASE}\n")).expect("pw");
        for sub in ["mnt/etc/ssh", "live/tmp", "live/run", "outside/etc"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        std::fs::write(d.join("mnt/etc/hostname"), "target\n").expect("write");
        std::fs::write(d.join("mnt/etc/shadow"), "root:!:1::::::\n").expect("write");
        std::fs::write(d.join("outside/etc/shadow"), "root:live-system:1::::::\n").expect("write");
        Scratch { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn mnt(&self) -> PathBuf {
        self.path("mnt")
    }

    pub fn live(&self) -> PathBuf {
        self.path("live")
    }

    /// Listing of everything except the bundle files and the passphrase.
    pub fn state(&self) -> BTreeMap<String, String> {
        let mut all = BTreeMap::new();
        for sub in ["mnt", "live", "outside"] {
            for (k, v) in snapshot(&self.path(sub)) {
                all.insert(format!("{sub}{k}"), v);
            }
        }
        all
    }

    /// Writes `bundle` and runs `vault unlock` on it with `extra` arguments.
    pub fn unlock(&self, bundle: &[u8], extra: &[&str]) -> Output {
        let path = self.path("b.vault");
        std::fs::write(&path, bundle).expect("write bundle");
        self.unlock_file(&path, extra)
    }

    pub fn unlock_file(&self, bundle: &Path, extra: &[&str]) -> Output {
        let extra = [&["--root-not-mountpoint"][..], extra].concat();
        self.unlock_at(bundle, &self.mnt(), &extra)
    }

    /// Writes `bundle` and runs `vault unlock` on it into `root`, a real mount point (so no
    /// `--root-not-mountpoint`), with `extra` arguments.
    pub fn unlock_onto(&self, root: &Path, bundle: &[u8], extra: &[&str]) -> Output {
        let path = self.path("b.vault");
        std::fs::write(&path, bundle).expect("write bundle");
        self.unlock_at(&path, root, extra)
    }

    /// Runs `vault unlock BUNDLE --root ROOT` with this scene's disk-stage root and passphrase
    /// file, and `extra` arguments.
    pub fn unlock_at(&self, bundle: &Path, root: &Path, extra: &[&str]) -> Output {
        Command::new(vault_bin())
            .arg("unlock")
            .arg(bundle)
            .arg("--root")
            .arg(root)
            .arg("--disk-root")
            .arg(self.live())
            .arg("--passphrase-file")
            .arg(self.path("pw"))
            .args(extra)
            .output()
            .expect("run vault")
    }

    /// Runs unlock and checks: exit `code`, `needle` in stderr, a hint, and no change at all
    /// in `mnt/`, `live/` and `outside/`.
    pub fn expect_refused(
        &self,
        what: &str,
        bundle: &[u8],
        extra: &[&str],
        code: i32,
        needle: &str,
    ) {
        let before = self.state();
        let o = self.unlock(bundle, extra);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{what}: exit code; stderr: {err}"
        );
        assert!(
            err.contains(needle),
            "{what}: expected {needle:?} in stderr: {err}"
        );
        assert!(err.contains("hint:"), "{what}: no hint in: {err}");
        assert!(
            !err.chars().any(|c| c.is_control() && c != '\n'),
            "{what}: a control character reached the terminal: {err:?}"
        );
        let after = self.state();
        assert_eq!(after, before, "{what}: the trees changed");
    }
}

pub fn vault_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vault"))
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
