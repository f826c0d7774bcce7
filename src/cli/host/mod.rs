//! `vault host`: generate or adopt host keys and register their recipients.
use clap::Subcommand;
use vault::escape::{escape, escape_path};
use vault::hosts::{self, AddOptions};
use vault::keys::passphrase;
use vault::ExitCode;

pub use args::{AddArgs, ListArgs, RemoveArgs};

mod args;
mod initrd;
mod secure_boot;

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Generate (or adopt) a host's SSH host key and register it everywhere it is needed.
    ///
    /// Writes hosts/NAME/ssh_host_ed25519_key (mode 0600) and .pub beside vault.toml, adds
    /// [hosts.NAME] to vault.toml (placing the key at /etc/ssh/ssh_host_ed25519_key), adds the
    /// host's age recipient (ssh-to-age) to .sops.yaml as an anchor under `keys:` and an alias
    /// in the shared creation rules and its own (not in a rule whose path_regex names another
    /// host; --rule chooses), and its ssh-ed25519 key to the agenix keys file. Then run
    /// `vault rekey`.
    Add(AddArgs),
    /// Print what this machine says about itself (product UUID and serials, permanent MAC
    /// addresses, disk serials and WWNs), for `vault host add NAME --identity FILE`.
    ///
    /// Run it on the machine (on its installer), as root: the UUID and serials are readable by
    /// root only. The output is TOML (docs/guide/fleet.md); what was left out and why goes to
    /// stderr. With a bundle of several hosts, `vault unlock` uses the recorded identities to
    /// tell which host a machine is.
    Identify(super::identify::IdentifyArgs),
    /// List the hosts of vault.toml with their keys and recipients.
    List(ListArgs),
    /// Remove a host from vault.toml and the lines `host add` wrote. Key files stay unless
    /// --delete-keys.
    Remove(RemoveArgs),
}

pub fn run(cmd: HostCommand, quiet: bool) -> vault::Result<ExitCode> {
    // One host command at a time on a vault.toml: each reads, edits and writes it back.
    match cmd {
        HostCommand::Add(a) => {
            let _lock = hosts::lock(&a.manifest)?;
            add(a, quiet)
        }
        HostCommand::Identify(a) => super::identify::identify(a, quiet),
        HostCommand::List(a) => list(a),
        HostCommand::Remove(a) => {
            let _lock = hosts::lock(&a.manifest)?;
            remove(a, quiet)
        }
    }
}

fn add(a: AddArgs, quiet: bool) -> vault::Result<ExitCode> {
    if a.secure_boot {
        return secure_boot::add(a, quiet, add_keys);
    }
    add_keys(a, quiet)
}

/// The SSH host key (with --initrd-ssh, the initrd key too), then the recorded identity.
fn add_keys(a: AddArgs, quiet: bool) -> vault::Result<ExitCode> {
    let Some(file) = a.identity.clone() else {
        if a.initrd_ssh {
            return initrd::add(a, quiet, add_main);
        }
        return add_main(a, quiet);
    };
    // Checked before anything is written; an existing host only gets its identity.
    let (manifest, name) = (a.manifest.clone(), a.name.clone());
    let identity = super::identify::read_for_add(&file, &manifest, &name)?;
    let known = hosts::list(&manifest)?
        .into_iter()
        .any(|h| h.name == name && h.ssh_host_key.is_some());
    if a.initrd_ssh {
        initrd::add(a, quiet, add_main)?;
    } else if !known {
        add_main(a, quiet)?;
    }
    super::identify::record(&manifest, &name, &identity, quiet)?;
    Ok(ExitCode::Ok)
}

fn add_main(a: AddArgs, quiet: bool) -> vault::Result<ExitCode> {
    let mut rules = Vec::new();
    for r in &a.rules {
        rules.push(regex::Regex::new(r).map_err(|e| hosts::Error::Edit {
            path: "--rule".into(),
            message: format!("{r:?} is not a valid regex: {e}"),
        })?);
    }
    let explicit_rules = !a.rules.is_empty();
    let opts = AddOptions {
        name: a.name.clone(),
        manifest: a.manifest,
        sops_config: a.sops_config,
        agenix_keys: a.agenix_keys,
        rules,
        from_existing: a.from_existing,
        passphrase: passphrase::Source::from_option(a.passphrase_file),
    };
    let added = hosts::add(&opts)?;
    swept(&added.undone);
    if !quiet {
        println!("host key    {}", escape_path(&added.private_key));
        println!("public key  {}", escape(&added.ssh_public));
        println!("age         {}", escape(&added.age_recipient));
        if let Some((p, rules)) = &added.sops {
            println!("sops        {}", escape_path(p));
            if added.sops_registered {
                println!(
                    "  already registered: &{} has this recipient; nothing changed",
                    escape(&a.name)
                );
            }
            for r in rules {
                // The rules' text comes from the repository's .sops.yaml.
                let rx = if r.path_regex.is_empty() {
                    "(every file)"
                } else {
                    r.path_regex.as_str()
                };
                println!(
                    "  {} rule {} {}  ({})",
                    if r.joined { "joined  " } else { "left out" },
                    r.number,
                    escape(rx),
                    escape(&r.why)
                );
            }
            if rules.iter().any(|r| !r.joined) && !explicit_rules {
                eprintln!(
                    "rules that name another host were left out; --rule REGEX picks rules yourself"
                );
            }
        }
        if let Some(p) = &added.agenix_keys {
            println!("agenix      {}", escape_path(p));
            if added.keys_registered {
                println!("  already registered: it holds this key; nothing changed");
            }
        }
        next_steps(&opts.manifest, &a.name, &added);
    }
    Ok(ExitCode::Ok)
}

/// Says what was done to the records of killed `host add` and `host remove` runs.
fn swept(records: &[(std::path::PathBuf, hosts::Outcome)]) {
    for (r, outcome) in records {
        let did = match outcome {
            hosts::Outcome::Undone => {
                "undid an interrupted earlier `vault host add` or `vault host remove`"
            }
            hosts::Outcome::Finished(host) => &format!(
                "finished an interrupted earlier `vault host remove {} --delete-keys`",
                escape(host)
            ),
        };
        eprintln!("note: {did} (its record {})", escape_path(r));
    }
}

/// What to do after `host add`, for what vault.toml configures: `vault rekey` only when a
/// secrets repo gained the host, the agenix instruction only when agenix rules are known.
fn next_steps(manifest: &std::path::Path, name: &str, added: &hosts::Added) {
    let m = vault::manifest::Manifest::load(manifest).ok();
    let rules = m.as_ref().and_then(|m| m.secrets.agenix_rules.as_ref());
    let pack = format!("`vault pack --host {name}` ships its key");
    if added.sops.is_none() && added.agenix_keys.is_none() {
        eprintln!(
            "no secrets repository in {} ([secrets] sops_config, agenix_keys): only it changed. If {name} reads sops-nix or agenix secrets, its recipients are above; record the repository there and `vault host add` registers the next hosts itself",
            manifest.display()
        );
        eprintln!("next: list {name}'s other files in vault.toml, then {pack}");
        return;
    }
    if added.agenix_keys.is_none() && rules.is_some() {
        eprintln!("agenix: add the public key above to the publicKeys of the secrets this host needs in secrets.nix");
    } else if added.agenix_keys.is_some() && rules.is_none() {
        eprintln!("{AGENIX_RULES_MISSING}");
    }
    let sops_done = added.sops.is_none() || added.sops_registered;
    let keys_done = added.agenix_keys.is_none() || added.keys_registered;
    if sops_done && keys_done {
        eprintln!(
            "next: nothing to re-encrypt for {name} (`vault rekey --check` confirms); {pack}"
        );
    } else {
        eprintln!("next: `vault rekey` re-encrypts the secrets to the new host; {pack} then");
    }
}

/// Said when vault edits an agenix keys file but does not know the rules that use it.
pub(crate) const AGENIX_RULES_MISSING: &str = "warning: vault.toml has `[secrets] agenix_keys` but no `agenix_rules`, so `vault rekey` does not re-encrypt the agenix files: add `agenix_rules = \"…/secrets.nix\"` to [secrets]";

fn list(a: ListArgs) -> vault::Result<ExitCode> {
    let hosts = hosts::list(&a.manifest)?;
    if a.json {
        super::json::print(&hosts)?;
        return Ok(ExitCode::Ok);
    }
    for h in hosts {
        let key = match (&h.ssh_host_key, h.key_present) {
            (Some(p), true) => escape_path(p),
            (Some(p), false) => format!("{} (missing)", escape_path(p)),
            (None, _) => "no host key".into(),
        };
        println!(
            "{:<16} {:<64} {}",
            escape(&h.name),
            escape(h.age_recipient.as_deref().unwrap_or("-")),
            key
        );
    }
    Ok(ExitCode::Ok)
}

fn remove(a: RemoveArgs, quiet: bool) -> vault::Result<ExitCode> {
    let r = hosts::remove(
        &a.manifest,
        &a.name,
        a.sops_config.as_deref(),
        a.agenix_keys.as_deref(),
        a.delete_keys,
    )?;
    swept(&r.undone);
    if !quiet {
        let keys = match &r.keys_file {
            Some(p) => format!(", {} of {}", r.keys_lines, escape_path(p)),
            None => String::new(),
        };
        if r.in_manifest {
            eprintln!(
                "removed {} from {} ({} lines of .sops.yaml{keys})",
                escape(&a.name),
                escape_path(&a.manifest),
                r.sops_lines,
            );
        } else {
            eprintln!(
                "{} was not in {}; removed its {} lines of .sops.yaml{keys}",
                escape(&a.name),
                escape_path(&a.manifest),
                r.sops_lines,
            );
        }
        for p in &r.deleted_keys {
            eprintln!("deleted {}", escape_path(p));
        }
        if !a.delete_keys {
            eprintln!("key files were kept; --delete-keys removes them. Run `vault rekey` to drop the host's access.");
        }
    }
    Ok(ExitCode::Ok)
}
