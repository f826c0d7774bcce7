//! `vault host add NAME --initrd-ssh`.

use vault::escape::{escape, escape_path};
use vault::{hosts, initrd_key, ExitCode};

use super::AddArgs;

/// The main host key first when the host is new (`add_main`), then the initrd key.
pub fn add(
    a: AddArgs,
    quiet: bool,
    add_main: fn(AddArgs, bool) -> vault::Result<ExitCode>,
) -> vault::Result<ExitCode> {
    let manifest_path = a.manifest.clone();
    let name = a.name.clone();
    let known = hosts::list(&manifest_path)?
        .into_iter()
        .any(|h| h.name == name && h.ssh_host_key.is_some());
    if !known {
        add_main(a, quiet)?;
    }
    let k = initrd_key::add(&manifest_path, &name)?;
    super::swept(&k.undone);
    if !quiet {
        println!("initrd key  {}", escape_path(&k.private_key));
        println!("initrd pub  {}", escape(&k.ssh_public));
        println!("placed at   {}", escape(&k.target));
        println!("nixos       {}", escape(&k.nix_line));
        eprintln!("the initrd key sits unencrypted on /boot: it is not the host key, and known_hosts should list it for the initrd only");
    }
    Ok(ExitCode::Ok)
}
