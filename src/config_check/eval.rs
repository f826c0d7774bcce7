//! One `nix eval` per host: the options a NixOS configuration reads at first boot, all at once.
//!
//! The expression applied to `nixosConfigurations.<name>.config` returns only strings, lists
//! and attribute sets, so nothing but the flake itself is copied to the store: paths become
//! strings with `toString` (a path inside the flake reads as its store copy). An option the
//! configuration does not declare (no sops-nix, no impermanence) comes back as `null`. Nothing
//! forces a derivation: an initrd key given as a Nix path is named, not copied.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::{escape, Error};

/// The Nix function applied to the configuration (its comments say what it reads and why).
const APPLY: &str = include_str!("apply.nix");

/// nix's answer is bounded; a configuration's first-boot paths are a few kilobytes.
const MAX_OUTPUT: u64 = 64 << 20;
const MAX_STDERR: u64 = 1 << 20;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct HostKeyOption {
    pub path: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct SopsSecret {
    pub file: Option<String>,
    pub format: Option<String>,
    /// `neededForUsers`: decrypted before users are created, by setupSecretsForUsers.
    #[serde(default)]
    pub needed_for_users: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct SopsOptions {
    pub key_file: Option<String>,
    /// `sops.age.generateKey`: a missing keyFile is generated before sops-nix reads it.
    #[serde(default)]
    pub generate_key: bool,
    #[serde(default)]
    pub ssh_key_paths: Vec<Option<String>>,
    pub default_sops_file: Option<String>,
    /// Keys read by a unit ordered after the mounts, not by an activation script.
    #[serde(default)]
    pub systemd_activation: bool,
    /// The same for `neededForUsers` secrets (systemd-sysusers or userborn only).
    #[serde(default)]
    pub users_systemd_activation: bool,
    #[serde(default)]
    pub secrets: BTreeMap<String, SopsSecret>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct AgeOptions {
    #[serde(default)]
    pub identity_paths: Vec<Option<String>>,
    #[serde(default)]
    pub systemd_activation: bool,
    #[serde(default)]
    pub secrets: BTreeMap<String, Option<String>>,
}

/// One `boot.initrd.network.ssh.hostKeys` entry: a path string, or a Nix path that NixOS copies
/// into the store (`store_copy`: the file's name).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct InitrdKey {
    pub path: Option<String>,
    pub store_copy: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct InitrdSsh {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub host_keys: Vec<InitrdKey>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Lanzaboote {
    pub pki_bundle: Option<String>,
    pub private_key_file: Option<String>,
    pub public_key_file: Option<String>,
    #[serde(default)]
    pub auto_enroll: bool,
    /// `autoGenerateKeys.enable`: sbctl creates the bundle at boot when it has no keys.
    #[serde(default)]
    pub auto_generate: bool,
    /// `allowUnsigned` (by default `autoGenerateKeys.enable`): lzbt installs unsigned when
    /// neither key file exists.
    #[serde(default)]
    pub allow_unsigned: bool,
}

/// One file or directory impermanence bind-mounts from `storage`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Persisted {
    pub path: Option<String>,
    pub storage: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct PersistenceRoot {
    pub enable: bool,
    pub storage: Option<String>,
    #[serde(default)]
    pub directories: Vec<Persisted>,
    #[serde(default)]
    pub files: Vec<Persisted>,
}

/// Home Manager's `home.persistence.<storage>` of one user (paths already under the home).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct HomePersistence {
    pub storage: Option<String>,
    #[serde(default)]
    pub directories: Vec<Persisted>,
    #[serde(default)]
    pub files: Vec<Persisted>,
}

/// What a configuration reads at first boot.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Evaluated {
    /// `services.openssh.enable`: without sshd, its host keys are read by nothing.
    #[serde(default)]
    pub sshd_enabled: bool,
    #[serde(default)]
    pub openssh_host_keys: Vec<HostKeyOption>,
    pub sops: Option<SopsOptions>,
    pub age: Option<AgeOptions>,
    #[serde(default)]
    pub initrd_ssh: InitrdSsh,
    #[serde(default)]
    pub initrd_secrets: BTreeMap<String, Option<String>>,
    pub persistence: Option<BTreeMap<String, PersistenceRoot>>,
    #[serde(default)]
    pub home_persistence: Vec<HomePersistence>,
    pub lanzaboote: Option<Lanzaboote>,
}

/// A flake and the `nixosConfigurations` attribute to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeRef {
    pub flake: String,
    pub config: String,
}

impl FlakeRef {
    /// Splits `REF#NAME` (`REF` alone: `default_name`). A relative path in `REF` is taken
    /// relative to `base` when given (the manifest's folder), as nix would take it relative to
    /// the current directory.
    pub fn parse(spec: &str, default_name: &str, base: Option<&Path>) -> Result<FlakeRef, String> {
        let (flake, config) = match spec.rsplit_once('#') {
            Some((f, c)) => (f, c),
            None => (spec, default_name),
        };
        if flake.is_empty() {
            return Err("names no flake before '#'".into());
        }
        if flake.starts_with('-') {
            return Err("must not start with '-'".into());
        }
        if config.is_empty()
            || config.len() > 255
            || config
                .chars()
                .any(|c| c.is_control() || matches!(c, '"' | '\\' | '$'))
        {
            return Err(format!(
                "configuration name {:?} is not a plain attribute name",
                escape(config)
            ));
        }
        if flake.chars().any(char::is_control) {
            return Err("contains control characters".into());
        }
        let flake = match base {
            Some(dir) if is_relative_path(flake) => {
                let joined = dir.join(flake);
                let p = if joined.is_absolute() {
                    joined
                } else {
                    std::env::current_dir().unwrap_or_default().join(joined)
                };
                p.to_string_lossy().into_owned()
            }
            _ => expand_home(flake),
        };
        Ok(FlakeRef {
            flake,
            config: config.to_owned(),
        })
    }

    /// `REF#nixosConfigurations."NAME".config`.
    pub fn installable(&self) -> String {
        format!(
            "{}#nixosConfigurations.\"{}\".config",
            self.flake, self.config
        )
    }
}

impl std::fmt::Display for FlakeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", escape(&self.flake), escape(&self.config))
    }
}

/// A flake reference that is a bare relative path (`.`, `./cfg`, `nix-config`): no URL scheme.
fn is_relative_path(r: &str) -> bool {
    !r.starts_with('/') && !r.starts_with('~') && !r.contains(':')
}

fn expand_home(r: &str) -> String {
    match (r.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home)
            .join(rest)
            .to_string_lossy()
            .into_owned(),
        _ => r.to_owned(),
    }
}

/// The first `nix` on `PATH`, if any.
pub fn find_nix() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join("nix"))
        .find(|p| p.is_file())
}

/// Runs `nix eval` once for `r`: every option of [`Evaluated`] in one evaluation.
pub fn evaluate(nix: &Path, host: &str, r: &FlakeRef) -> Result<Evaluated, Error> {
    let mut child = Command::new(nix)
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "eval",
            // Never write a flake.lock into the user's repository as a side effect of packing.
            "--no-write-lock-file",
            // Evaluate, never build or run: import-from-derivation would build derivations
            // (running their builders) to read the result; builtins.exec would run a program.
            // A flake is evaluated in pure mode already (no NIX_PATH, no files outside the
            // flake and its locked inputs); it is forced here, not left to nix.conf.
            "--option",
            "pure-eval",
            "true",
            "--option",
            "allow-import-from-derivation",
            "false",
            "--option",
            "allow-unsafe-native-code-during-evaluation",
            "false",
            "--json",
            "--apply",
            APPLY,
        ])
        .arg(r.installable())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .map_err(|source| Error::Spawn {
            nix: nix.to_path_buf(),
            source,
        })?;
    let stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr {
            let _ = s.take(MAX_STDERR).read_to_end(&mut buf);
        }
        buf
    });
    let mut out = Vec::new();
    let read = child
        .stdout
        .take()
        .map(|s| s.take(MAX_OUTPUT + 1).read_to_end(&mut out));
    if out.len() as u64 > MAX_OUTPUT {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|source| Error::Spawn {
        nix: nix.to_path_buf(),
        source,
    })?;
    let err = err_reader.join().unwrap_or_default();
    if let Some(Err(source)) = read {
        return Err(Error::Spawn {
            nix: nix.to_path_buf(),
            source,
        });
    }
    if !status.success() {
        return Err(Error::Eval {
            host: host.to_owned(),
            flake: r.to_string(),
            message: nix_error(&err),
        });
    }
    if out.len() as u64 > MAX_OUTPUT {
        return Err(Error::Eval {
            host: host.to_owned(),
            flake: r.to_string(),
            message: format!("nix printed more than {MAX_OUTPUT} bytes"),
        });
    }
    serde_json::from_slice(&out).map_err(|e| Error::Eval {
        host: host.to_owned(),
        flake: r.to_string(),
        message: format!("unexpected output from nix eval: {e}"),
    })
}

/// Nix's error text, without its warnings, colours or any other control character.
pub fn nix_error(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = strip_ansi(&text);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("warning:"))
        .map(escape)
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.is_empty() {
        "nix eval failed without a message".into()
    } else {
        lines.join("\n  ")
    }
}

/// Removes `ESC [ … final` sequences (colours), so what remains reads as text.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&d) {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flake_refs() {
        let r = FlakeRef::parse("/cfg#lap", "x", None).unwrap();
        assert_eq!(r.installable(), "/cfg#nixosConfigurations.\"lap\".config");
        let r = FlakeRef::parse("github:a/b", "web", None).unwrap();
        assert_eq!(r.config, "web");
        let r = FlakeRef::parse(".#lap", "x", Some(Path::new("/ws"))).unwrap();
        assert_eq!(r.flake, "/ws/.");
        assert!(FlakeRef::parse("-x#a", "a", None).is_err());
        assert!(FlakeRef::parse("/c#a\"b", "a", None).is_err());
        assert!(FlakeRef::parse("#a", "a", None).is_err());
    }

    #[test]
    fn nix_errors_lose_colours_and_control_characters() {
        let e = nix_error(b"warning: noise\n\x1b[31;1merror:\x1b[0m boom\x07 here\n");
        assert_eq!(e, "error: boom\\x07 here");
    }
}
