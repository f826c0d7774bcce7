//! The arguments of `vault host add`, `list` and `remove`, shared by the parts of `host add`
//! (`--initrd-ssh`, `--secure-boot`) that live in their own modules.

use std::path::PathBuf;

use clap::Args;

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
