//! `secrets.nix`: agenix's rules, evaluated once with `nix-instantiate` in Nix's restricted mode.

use std::path::{Path, PathBuf};

use crate::repo::{nix_eval, Error};

/// One entry of `secrets.nix`.
#[derive(Debug, Clone)]
pub struct AgenixRule {
    /// `root` joined with `name`, for messages.
    pub file: PathBuf,
    /// The folder of `secrets.nix`, as the manifest names it.
    pub root: PathBuf,
    /// The rule's attribute name: the file's path relative to `root`.
    pub name: PathBuf,
    pub public_keys: Vec<String>,
    pub armor: bool,
}

/// Evaluates `secrets.nix` once, in its folder and in Nix's restricted mode
/// ([`nix_eval`]): it may read files of its own folder and of the folder of
/// `keys_file` (the agenix keys file `vault.toml` names), nothing else, and fetch nothing.
pub fn load_rules(path: &Path, keys_file: Option<&Path>) -> Result<Vec<AgenixRule>, Error> {
    // Files are named relative to secrets.nix as the manifest names it (for messages and to
    // line up with the sops walk). nix runs in its folder, that folder's path resolved, but
    // secrets.nix itself not: if it is a link out of the folder, restricted mode refuses the
    // target instead of reading it.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let here = nix_eval::folder_of(path).map_err(|e| Error::io("cannot find", &dir, e))?;
    let abs = here.join(path.file_name().unwrap_or(path.as_os_str()));
    if !abs.exists() {
        return Err(Error::io(
            "cannot find",
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let allowed: Vec<PathBuf> = keys_file
        .and_then(|k| nix_eval::folder_of(k).ok())
        .into_iter()
        .collect();
    let mut cmd = nix_eval::restricted(&here, &allowed);
    cmd.arg(&abs);
    let v = nix_eval::json(cmd).map_err(|message| Error::Nix {
        path: path.into(),
        message,
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| Error::config(path, "does not evaluate to an attribute set"))?;
    let mut rules = Vec::new();
    for (name, rule) in obj {
        let bad = |m: &str| Error::config(path, format!("{name:?}: {m}"));
        let keys = rule
            .get("publicKeys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| bad("no publicKeys list"))?
            .iter()
            .map(|k| {
                k.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| bad("a public key is not a string"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let armor = rule.get("armor").and_then(|a| a.as_bool()).unwrap_or(false);
        if name.contains("..") || Path::new(name).is_absolute() {
            return Err(bad("file names must stay inside the secrets.nix folder"));
        }
        rules.push(AgenixRule {
            file: dir.join(name),
            root: dir.clone(),
            name: PathBuf::from(name),
            public_keys: keys,
            armor,
        });
    }
    rules.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(rules)
}
