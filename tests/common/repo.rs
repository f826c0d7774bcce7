//! A scratch secrets repository for the rekey tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::write_identity;

/// `root/` with an empty `home/` (vault's `HOME`, so only the identities a test gives with
/// `-i` count), `secrets/`, and two age identities: the admin's (`admin.txt`) and a host's
/// (`host.txt`), whose recipients are `admin` and `host`.
pub struct SecretsRepo {
    _t: tempfile::TempDir,
    pub root: PathBuf,
    pub secrets: PathBuf,
    pub admin: String,
    pub host: String,
}

impl SecretsRepo {
    pub fn new() -> SecretsRepo {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        std::fs::create_dir(root.join("home")).unwrap();
        let secrets = root.join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        let admin = write_identity(&root.join("admin.txt"));
        let host = write_identity(&root.join("host.txt"));
        SecretsRepo {
            _t: t,
            root,
            secrets,
            admin,
            host,
        }
    }

    /// A `vault.toml` whose secrets repo is the agenix rules `secrets/secrets.nix`.
    pub fn agenix_manifest(&self) {
        std::fs::write(
            self.root.join("vault.toml"),
            "version = 1\n\n[secrets]\nagenix_rules = \"secrets/secrets.nix\"\n",
        )
        .unwrap();
    }

    /// `program` in the repo with the empty `HOME` and no `SOPS_AGE_KEY_FILE`.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.root)
            .env("HOME", self.root.join("home"))
            .env_remove("SOPS_AGE_KEY_FILE");
        c
    }
}
