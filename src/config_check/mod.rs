//! Reading a host's NixOS configuration and checking it against `vault.toml` before a bundle
//! is written: every key the configuration reads at first boot must be placed where it will
//! look (impermanence bind mounts included), with a mode its consumer accepts, and every
//! secret file the configuration uses must open with the keys the host will have.
//!
//! One `nix eval` per host ([`eval`]), with the user's own `nix`; without `nix` or a flake the
//! check is skipped. What each consumer reads is in `checks`, where it must be placed in
//! [`rules`]; `docs/CLI.md` (`pack`) describes them.

mod checks;
pub mod eval;
mod persistence;
pub mod rules;
mod secrets;
mod secure_boot;

use std::path::PathBuf;

use crate::manifest::Manifest;
use crate::pack::PackPlan;

pub use checks::check_host;
pub use eval::{Evaluated, FlakeRef};
pub use rules::Problem;

/// Errors that stop the check itself (not the problems it finds).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--flake` or a manifest `flake` key that cannot be used.
    #[error("{origin} \"{spec}\": {why}")]
    Flake {
        origin: String,
        spec: String,
        why: String,
    },
    #[error("cannot run {nix}: {source}")]
    Spawn {
        nix: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration did not evaluate; `message` is Nix's error, escaped.
    #[error("{host}: the NixOS configuration {flake} does not evaluate:\n  {message}")]
    Eval {
        host: String,
        flake: String,
        message: String,
    },
    /// The check found problems (listed before this error is reported).
    #[error("the NixOS configuration check found {count} problem(s) (listed above)")]
    Problems { count: usize },
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Flake { .. } => Some(
                "give the flake as REF#NAME (NAME: the host in vault.toml and in nixosConfigurations), e.g. --flake ~/nix-config#laptop".into(),
            ),
            Error::Spawn { .. } => Some("pass --no-config-check to pack without the check".into()),
            Error::Eval { flake, message, .. } => Some(eval_hint(flake, message)),
            Error::Problems { .. } => Some(
                "fix vault.toml or the configuration as each hint says, or pass --no-config-check to pack anyway".into(),
            ),
        }
    }

    fn exit_code(&self) -> crate::ExitCode {
        match self {
            Error::Flake { origin, .. } if origin.starts_with("--") => crate::ExitCode::Usage,
            Error::Flake { .. } => crate::ExitCode::BadManifest,
            Error::Problems { .. } => crate::ExitCode::Refused,
            _ => crate::ExitCode::Failure,
        }
    }
}

/// The next step for a configuration that does not evaluate, from Nix's message: the two
/// mistakes a first flake makes get their fix; anything else is the configuration's own.
fn eval_hint(flake: &str, message: &str) -> String {
    // `nixcfg#laptop`: nix looks the bare word up in its flake registry (which it may try to
    // download) instead of reading the folder.
    let (r, name) = flake.split_once('#').unwrap_or((flake, ""));
    let bare = !r.is_empty() && !r.contains(['/', ':', '.', '~']);
    if bare && message.contains("registr") {
        return format!(
            "nix reads `{r}` as the name of a flake in its registry, not as a folder: for the folder, write a path, `./{r}#{name}`"
        );
    }
    let untracked = message.contains("is not tracked by Git")
        || (message.contains("/nix/store/")
            && message.contains("-source/")
            && message.contains("No such file or directory"));
    if untracked {
        return "the flake is in a git repository, and nix copies only the files git tracks: `git add flake.nix` (and every file it imports; no commit needed), then pack again".into();
    }
    "fix the configuration (`nix eval` shows the same error), or pass --no-config-check to pack anyway".into()
}

/// What the check did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Set when nothing was checked, and why.
    pub skipped: Option<String>,
    /// Hosts whose configuration was evaluated, with the flake it came from.
    pub checked: Vec<(String, String)>,
    /// How many times `nix eval` ran (one per checked host).
    pub evaluations: usize,
    pub problems: Vec<Problem>,
}

/// Which configuration each packed host is checked against: `--flake` values first (`REF#NAME`
/// for host NAME, or for the only packed host; `REF` for every packed host), then the host's
/// `flake` key in the manifest. Hosts with neither are not checked.
pub fn flake_refs(
    manifest: &Manifest,
    hosts: &[String],
    cli: &[String],
) -> Result<Vec<(String, FlakeRef)>, Error> {
    let bad = |origin: &str, spec: &str, why: String| Error::Flake {
        origin: origin.to_owned(),
        spec: escape(spec),
        why,
    };
    let mut chosen: std::collections::BTreeMap<String, FlakeRef> = Default::default();
    // Every-host refs first, so a REF#NAME for one host wins over them.
    let (named, every): (Vec<&String>, Vec<&String>) = cli.iter().partition(|s| s.contains('#'));
    for spec in every {
        for h in hosts {
            let r = FlakeRef::parse(spec, h, None).map_err(|why| bad("--flake", spec, why))?;
            chosen.insert(h.clone(), r);
        }
    }
    for spec in named {
        let name = spec.rsplit_once('#').map(|(_, n)| n).unwrap_or("");
        let host = if hosts.iter().any(|h| h == name) {
            name.to_owned()
        } else if hosts.len() == 1 {
            hosts[0].clone()
        } else {
            return Err(bad(
                "--flake",
                spec,
                format!(
                    "{:?} is not one of the hosts being packed ({}); name the host after '#', or pack one host with --host",
                    escape(name),
                    hosts.join(", ")
                ),
            ));
        };
        let r = FlakeRef::parse(spec, &host, None).map_err(|why| bad("--flake", spec, why))?;
        chosen.insert(host, r);
    }
    for h in hosts {
        if chosen.contains_key(h) {
            continue;
        }
        if let Some(spec) = manifest.hosts.get(h).and_then(|x| x.flake.as_deref()) {
            let origin = format!("{}: hosts.{h}.flake", manifest.path.display());
            let r = FlakeRef::parse(spec, h, Some(manifest.dir()))
                .map_err(|why| bad(&origin, spec, why))?;
            chosen.insert(h.clone(), r);
        }
    }
    Ok(chosen.into_iter().collect())
}

/// Evaluates each packed host's configuration (once) and checks it against the plan.
pub fn check(
    manifest: &Manifest,
    plan: &PackPlan,
    cli_flakes: &[String],
) -> Result<Outcome, Error> {
    let refs = flake_refs(manifest, &plan.manifest.hosts, cli_flakes)?;
    let mut out = Outcome {
        skipped: None,
        checked: Vec::new(),
        evaluations: 0,
        problems: Vec::new(),
    };
    if refs.is_empty() {
        out.skipped = Some(
            "no flake given (--flake REF#HOST, or flake = \"REF#HOST\" in [hosts.HOST] of vault.toml)"
                .into(),
        );
        return Ok(out);
    }
    let Some(nix) = eval::find_nix() else {
        out.skipped = Some("`nix` is not on PATH".into());
        return Ok(out);
    };
    for (host, r) in &refs {
        let evaluated = eval::evaluate(&nix, host, r)?;
        out.evaluations += 1;
        out.checked.push((host.clone(), r.to_string()));
        out.problems
            .extend(check_host(manifest, plan, host, &evaluated));
    }
    Ok(out)
}

/// `s` escaped as every untrusted string is ([`crate::escape::escape`]): text from a
/// configuration or from Nix never reaches the terminal raw.
pub fn escape(s: &str) -> String {
    crate::escape::escape(s).into_owned()
}

impl crate::error::Layer for Error {}
