//! `vault host`: generate or adopt host keys and register their recipients.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vault::escape::{escape, escape_path};
use vault::hosts::{self, AddOptions};
use vault::keys::passphrase;
use vault::ExitCode;

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

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Host name (lowercase, hostname-like).
    pub name: String,
    #[arg(short, long, value_name = "FILE", default_value = "vault.toml")]
    pub manifest: PathBuf,
    /// .sops.yaml to add the recipient to (default: [secrets] sops_config of vault.toml;
    /// recorded there if it has none).
    #[arg(long, value_name = "FILE")]
    pub sops_config: Option<PathBuf>,
    /// File of agenix public keys to add the host's ssh-ed25519 key to: a keys.nix-style
    /// attribute set or list, or a .json object or list (default: [secrets] agenix_keys of
    /// vault.toml; recorded there if it has none).
    #[arg(long, value_name = "FILE")]
    pub agenix_keys: Option<PathBuf>,
    /// Add the host to the creation rules whose path_regex matches this regex (repeatable),
    /// whatever they name. Default: the shared rules and the host's own, not those whose
    /// path_regex names another host.
    #[arg(long = "rule", value_name = "REGEX")]
    pub rules: Vec<String>,
    /// Adopt this existing OpenSSH ed25519 private key instead of generating one (copied,
    /// unencrypted, to hosts/NAME/).
    #[arg(long, value_name = "FILE")]
    pub from_existing: Option<PathBuf>,
    /// Passphrase for --from-existing, first line of this file (default: ask on the terminal).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Also generate a separate SSH host key for the initrd (remote LUKS unlock), placed at
    /// /etc/secrets/initrd/ssh_host_ed25519_key, and print its boot.initrd.network.ssh.hostKeys
    /// line. For a host already in vault.toml, only this is done.
    #[arg(long)]
    pub initrd_ssh: bool,
    /// Record this machine identity (the output of `vault host identify`) as
    /// [hosts.NAME.identity], replacing one recorded before. For a host already in vault.toml,
    /// only this is done.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Also generate Secure Boot keys for lanzaboote (PK, KEK, db: RSA-4096, self-signed,
    /// sbctl's layout) in hosts/NAME/secure-boot/, their signed enrolment updates (.auth), and
    /// the entry placing them at /var/lib/sbctl (boot.lanzaboote.pkiBundle). For a host
    /// already in vault.toml, only this is done.
    #[arg(long)]
    pub secure_boot: bool,
    /// With --secure-boot: replace the host's db key (the old one is kept under retired/) and
    /// write the updates that add the new key to the firmware's db and forbid the old one.
    #[arg(long, requires = "secure_boot")]
    pub rotate: bool,
    /// With --secure-boot: where the keys land on the installed system
    /// (boot.lanzaboote.pkiBundle; default /var/lib/sbctl).
    #[arg(
        long,
        value_name = "PATH",
        requires = "secure_boot",
        conflicts_with = "rotate"
    )]
    pub pki_bundle: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(short, long, value_name = "FILE", default_value = "vault.toml")]
    pub manifest: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    pub name: String,
    #[arg(short, long, value_name = "FILE", default_value = "vault.toml")]
    pub manifest: PathBuf,
    /// .sops.yaml to remove the host's lines from (default: [secrets] sops_config).
    #[arg(long, value_name = "FILE")]
    pub sops_config: Option<PathBuf>,
    /// agenix keys file to remove the host's key from (default: [secrets] agenix_keys).
    #[arg(long, value_name = "FILE")]
    pub agenix_keys: Option<PathBuf>,
    /// Also delete hosts/NAME/ssh_host_ed25519_key and .pub.
    #[arg(long)]
    pub delete_keys: bool,
}

pub fn run(cmd: HostCommand, quiet: bool) -> vault::Result<ExitCode> {
    match cmd {
        HostCommand::Add(a) => add(a, quiet),
        HostCommand::Identify(a) => super::identify::identify(a, quiet),
        HostCommand::List(a) => list(a),
        HostCommand::Remove(a) => remove(a, quiet),
    }
}

fn add(a: AddArgs, quiet: bool) -> vault::Result<ExitCode> {
    if a.secure_boot {
        return super::secure_boot::add(a, quiet, add_keys);
    }
    add_keys(a, quiet)
}

/// The SSH host key (with --initrd-ssh, the initrd key too), then the recorded identity.
fn add_keys(a: AddArgs, quiet: bool) -> vault::Result<ExitCode> {
    let Some(file) = a.identity.clone() else {
        if a.initrd_ssh {
            return super::initrd::add(a, quiet, add_main);
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
        super::initrd::add(a, quiet, add_main)?;
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
    for r in &added.undone {
        eprintln!(
            "note: undid an interrupted earlier `vault host add` (its record {})",
            escape_path(r)
        );
    }
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
