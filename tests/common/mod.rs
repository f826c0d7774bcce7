//! Shared by the integration tests. Each test file does `mod common;` and uses what it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real external tool `name` (age, rage, sops, nix-instantiate, qemu-system-x86_64, ...).
/// `scripts/test` installs them all. Outside CI a missing tool skips the test with a message;
/// in CI (`CI=true`) it fails, so a missing install step cannot hide.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{name} is not installed; scripts/test installs it")
        }
        None => {
            eprintln!("SKIP: {name} not found on PATH (scripts/test installs it)");
            None
        }
    }
}

/// `../shared/fixtures/<sub>` if present; otherwise prints a skip message and returns None.
pub fn fixtures(sub: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} not present", p.display());
        None
    }
}

/// The vault binary built for this test run.
pub fn vault_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vault"))
}

/// Cheap KDF flags for tests: the real Argon2id code path at a tiny cost.
pub const FAST_KDF: &[&str] = &[
    "--kdf-memory",
    "8",
    "--kdf-iterations",
    "1",
    "--kdf-parallelism",
    "1",
];

/// Runs the vault binary in `dir`.
pub fn vault_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(vault_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run vault")
}

/// Asserts success and returns stdout; on failure shows the exit code, stdout and stderr.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed ({:?}): {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
