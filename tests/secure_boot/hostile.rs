//! Hostile or odd files in the Secure Boot folder, and runs killed or interrupted mid-way:
//! a FIFO where a key belongs is refused without waiting for a writer, a key that is a link
//! (kept outside the repository) is refused rather than copied into it, and a `--rotate`
//! killed or interrupted at any step leaves the previous key set in place and usable.

use super::*;
use std::os::unix::fs::OpenOptionsExt;

/// Runs `vault args` in `base`. While it runs, opens `fifo` for writing without blocking,
/// which succeeds only while a reader holds it open: then vault is waiting on the FIFO, and
/// is killed. Returns the output and whether that happened.
fn run_beside_fifo(base: &Path, fifo: &Path, args: &[&str]) -> (Output, bool) {
    let mut child = Command::new(vault_bin())
        .args(args)
        .current_dir(base)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vault");
    let blocked = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        let writer = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(fifo);
        if writer.is_ok() {
            let _ = child.kill();
            break true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (child.wait_with_output().unwrap(), blocked)
}

#[test]
fn a_fifo_where_a_key_belongs_is_refused_without_waiting_on_it() {
    let t = fleet_copy();
    let base = t.path();
    for file in ["GUID", "keys/KEK/KEK.key", "keys/db/db.pem"] {
        let path = pki(base).join(file);
        let kept = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        ok(run(Command::new("mkfifo").arg(&path)));
        let before = common::snapshot(base);
        let (o, blocked) = run_beside_fifo(
            base,
            &path,
            &["host", "add", HOST, "--secure-boot", "--rotate"],
        );
        assert!(
            !blocked,
            "{file}: vault opened the FIFO and waited for a writer"
        );
        let out = text(&o);
        assert_eq!(o.status.code(), Some(5), "{file}: {out}");
        assert!(
            out.contains(file) && out.contains("not a regular file"),
            "{file}: {out}"
        );
        common::assert_same(&before, &common::snapshot(base), file);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, kept).unwrap();
    }
}

#[test]
fn a_key_that_is_a_link_is_refused_not_copied_into_the_folder() {
    // A db key, or its whole folder, kept off the repository and linked in.
    for linked in ["keys/db/db.key", "keys/db"] {
        let t = fleet_copy();
        let base = t.path();
        let outside = tempfile::tempdir().unwrap();
        let at = pki(base).join(linked);
        let kept = outside.path().join("kept");
        std::fs::rename(&at, &kept).unwrap();
        std::os::unix::fs::symlink(&kept, &at).unwrap();
        let secret = std::fs::read(pki(base).join("keys/db/db.key")).unwrap();
        let before = common::snapshot(base);
        let o = vault(base, &["host", "add", HOST, "--secure-boot", "--rotate"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(5), "{linked}: {out}");
        assert!(
            out.contains(linked) && out.contains("symbolic link"),
            "{linked}: {out}"
        );
        common::assert_same(&before, &common::snapshot(base), linked);
        let copies: Vec<PathBuf> = common::snapshot(base)
            .into_iter()
            .filter(|(_, bytes)| *bytes == secret)
            .map(|(p, _)| p)
            .collect();
        assert!(
            copies.is_empty(),
            "{linked}: the key was copied to {copies:?}"
        );
        assert!(std::fs::symlink_metadata(&at)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
