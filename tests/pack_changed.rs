//! A source file that changes between `vault pack`'s hashing pass and its streaming pass is
//! an error, never a bundle whose contents disagree with its manifest: for files that changed
//! recently (hashed twice) and for settled files (checked by their stamp, not hashed again).

use std::path::Path;

use age_core::secrecy::SecretString;
use vault::archive::write::Compression;
use vault::bundle::KdfParams;
use vault::manifest::Manifest;
use vault::pack::{self, PackOptions};

const CHEAP: KdfParams = KdfParams {
    m_kib: 8 * 1024,
    t: 1,
    p: 1,
};

fn setup(dir: &Path) -> Manifest {
    std::fs::write(dir.join("a.key"), "secret one\n").unwrap();
    std::fs::write(dir.join("b.key"), "secret two\n").unwrap();
    let toml = r#"
version = 1

[[entry]]
source = "a.key"
target = "/etc/a.key"

[[entry]]
source = "b.key"
target = "/etc/b.key"
"#;
    let path = dir.join("vault.toml");
    std::fs::write(&path, toml).unwrap();
    Manifest::load(&path).unwrap()
}

fn opts() -> PackOptions {
    PackOptions {
        kdf: CHEAP,
        compression: Compression::default(),
        replace: true,
    }
}

fn pass() -> SecretString {
    SecretString::from("correct horse".to_owned())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn pack_after(dir: &Path, plan: &pack::PackPlan, change: bool) -> vault::Result<u64> {
    if change {
        // Past the kernel's timestamp tick (1–10 ms), as any real later change would be:
        // that is what the settled rule guarantees outside of tests.
        std::thread::sleep(std::time::Duration::from_millis(50));
        // Same size, different bytes: only the hash or the stamp can tell.
        std::fs::write(dir.join("b.key"), "SECRET TWO\n").unwrap();
    }
    pack::write_bundle(plan, &dir.join("out.bundle"), pass(), opts(), &|_| {})
}

#[test]
fn fresh_files_are_hashed_again_and_a_change_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let m = setup(t.path());
    let plan = pack::plan(&m, &[]).unwrap();
    assert!(
        plan.settled.iter().all(Option::is_none),
        "files written just now must be hashed twice"
    );
    let e = pack_after(t.path(), &plan, true).unwrap_err();
    assert!(
        e.to_string().contains("changed while vault was packing"),
        "{e}"
    );
    assert!(!t.path().join("out.bundle").exists());
}

#[test]
fn settled_files_are_checked_by_stamp_and_a_change_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let m = setup(t.path());
    // As if hashing had begun well after the files were written.
    let plan = pack::plan_at(&m, &[], now() + 60).unwrap();
    assert!(plan.settled.iter().all(Option::is_some));
    let e = pack_after(t.path(), &plan, true).unwrap_err();
    assert!(
        e.to_string().contains("changed while vault was packing"),
        "{e}"
    );
    assert!(!t.path().join("out.bundle").exists());
    // Left alone, the same plan packs, and the bundle's contents match its manifest.
    std::fs::write(t.path().join("b.key"), "secret two\n").unwrap();
    let plan = pack::plan_at(&m, &[], now() + 60).unwrap();
    pack_after(t.path(), &plan, false).unwrap();
    // `inspect` with the passphrase reads the whole payload and checks every file's hash.
    std::fs::write(t.path().join("pw"), "correct horse\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vault"))
        .args(["inspect", "--json", "--passphrase-file"])
        .arg(t.path().join("pw"))
        .arg(t.path().join("out.bundle"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("/etc/b.key"), "{stdout}");
}
