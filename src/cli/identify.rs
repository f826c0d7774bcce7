//! `vault host identify`, `vault host add --identity FILE`, and the host menu of
//! `vault unlock` (docs/guide/fleet.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use vault::escape::escape;
use vault::identity::choose::{HostChooser, Menu};
use vault::identity::{self, sysfs, text};
use vault::manifest::identity::Identity;
use vault::{prompt, Error, ExitCode};

#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// Read what a nixos-facter report (`nixos-facter > facter.json`) has instead of this
    /// machine: its disks' serials and WWNs (the report leaves out UUIDs, serials and MAC
    /// addresses; what is missing is said).
    #[arg(long, value_name = "REPORT")]
    pub from_facter: Option<PathBuf>,
    /// Read sysfs under DIR instead of /sys (for tests; the output says where it read).
    #[arg(long, hide = true, value_name = "DIR", default_value = sysfs::DEFAULT_ROOT)]
    pub sysfs_root: PathBuf,
}

/// Prints the identify file on stdout, and on stderr what was left out.
pub fn identify(a: IdentifyArgs, quiet: bool) -> vault::Result<ExitCode> {
    let (reading, source) = match &a.from_facter {
        Some(report) => (
            identity::facter::read_file(report)?,
            format!("the nixos-facter report {}", report.display()),
        ),
        None => (
            sysfs::read(&a.sysfs_root),
            a.sysfs_root.display().to_string(),
        ),
    };
    print!("{}", text::render(&reading, &source));
    if !quiet {
        for n in &reading.notes {
            eprintln!("vault: left out {}: {}", escape(&n.what), escape(&n.why));
        }
        if reading.identity.is_empty() {
            eprintln!("vault: nothing read identifies this machine; `vault unlock` will show the host menu on it");
        }
    }
    Ok(ExitCode::Ok)
}

/// `--identity FILE` of `vault host add`, read and checked before anything is written:
/// placeholder values are dropped (and said), an empty one refused, and one another host of
/// `manifest` records refused.
pub fn read_for_add(file: &Path, manifest: &Path, name: &str) -> vault::Result<Identity> {
    // The name first, as `host add` without --identity checks it: a bad one is not a fault of
    // vault.toml.
    vault::manifest::check_host_name(name).map_err(|why| vault::hosts::Error::BadName {
        name: name.to_owned(),
        why,
    })?;
    let (id, dropped) = text::read_file(file)?.without_junk();
    for (kind, v, why) in dropped {
        eprintln!(
            "vault: left out {} \"{}\": {why}; it never identifies a machine",
            kind.key(),
            escape(&v)
        );
    }
    if id.is_empty() {
        return Err(vault::hosts::Error::Edit {
            path: file.into(),
            message: "it holds no identifier that can recognise a machine".into(),
        }
        .into());
    }
    identity::record::check(manifest, name, &id)?;
    Ok(id)
}

/// Records `id` for `name` and says what was recorded.
pub fn record(manifest: &Path, name: &str, id: &Identity, quiet: bool) -> vault::Result<()> {
    identity::record::record(manifest, name, id)?;
    if !quiet {
        let kinds: Vec<String> = id
            .values()
            .map(|(k, v)| format!("{} {}", k.describe(), escape(v)))
            .collect();
        println!(
            "identity    {} ([hosts.{name}.identity] in {})",
            identity::matching::join(&kinds),
            manifest.display()
        );
    }
    Ok(())
}

/// How `vault unlock` chooses among several hosts: by this machine's identity read from
/// `sysfs_root`, else the host menu on the terminal (none without one); the match is said on
/// stderr unless `quiet`.
pub fn chooser(sysfs_root: PathBuf, quiet: bool) -> HostChooser {
    HostChooser {
        sysfs_root: Some(sysfs_root),
        ask: prompt::has_tty().then(|| Arc::new(ask) as Arc<identity::choose::AskFn>),
        tell: (!quiet).then(|| {
            Arc::new(|line: &str| eprintln!("vault: {line}")) as Arc<identity::choose::TellFn>
        }),
    }
}

/// The host menu: a number from the list, asked up to three times. The answer is never
/// printed back (it may be a passphrase typed into the wrong prompt).
fn ask(menu: &Menu) -> vault::Result<String> {
    let mut list = String::new();
    for (i, (h, why)) in menu.hosts.iter().enumerate() {
        list.push_str(&format!("\n  {}) {h}  ({})", i + 1, escape(why)));
    }
    eprintln!("vault: {}; which host is this machine?{list}", menu.why);
    let n = menu.hosts.len();
    for _ in 0..3 {
        let answer = prompt::ask_visible(&format!("Host number (1-{n}): "))?;
        if let Some((h, _)) = answer
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| menu.hosts.get(i))
        {
            return Ok(h.clone());
        }
        eprintln!("vault: that is not a number from 1 to {n}");
    }
    Err(Error::Host("no host was chosen".into()))
}
