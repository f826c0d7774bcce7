//! `vault host add NAME --secure-boot [--rotate] [--pki-bundle PATH]`.

use vault::secure_boot::host::{self, Options};
use vault::{hosts, ExitCode};

use super::AddArgs;

/// The host's SSH key first when the host is new, or `--initrd-ssh` was asked for too
/// (`before`), then the Secure Boot keys.
pub fn add(
    a: AddArgs,
    quiet: bool,
    before: fn(AddArgs, bool) -> vault::Result<ExitCode>,
) -> vault::Result<ExitCode> {
    let opts = Options {
        manifest: a.manifest.clone(),
        name: a.name.clone(),
        pki_bundle: a.pki_bundle.clone(),
        rotate: a.rotate,
    };
    // Before a new host's SSH key is made: a bad --pki-bundle must change nothing.
    if let Some(p) = &opts.pki_bundle {
        host::check_pki_bundle(p)?;
    }
    let known = hosts::list(&opts.manifest)?
        .into_iter()
        .any(|h| h.name == opts.name && h.ssh_host_key.is_some());
    if !known && opts.rotate {
        return Err(vault::secure_boot::Error::Missing {
            name: opts.name.clone(),
            dir: vault::secure_boot::layout::host_dir_rel(&opts.name).into(),
        }
        .into());
    }
    if !known || a.initrd_ssh {
        before(a, quiet)?;
    }
    if !quiet {
        eprintln!(
            "generating RSA-4096 keys for {} (this takes a while)…",
            if opts.rotate { "db" } else { "PK, KEK and db" }
        );
    }
    let o = host::add(&opts, std::time::SystemTime::now())?;
    if quiet {
        return Ok(ExitCode::Ok);
    }
    for p in &o.swept {
        eprintln!("removed {} (left by an interrupted run)", p.display());
    }
    println!("secure boot {}", o.dir.join("pki").display());
    println!("guid        {}", o.guid);
    match &o.target {
        Some(t) => {
            println!("placed at   {t}");
            println!("nixos       boot.lanzaboote.pkiBundle = \"{t}\";");
        }
        None => eprintln!(
            "warning: no entry of {} places {}; lanzaboote needs it at its pkiBundle",
            opts.manifest.display(),
            o.dir.join("pki").display()
        ),
    }
    match &o.rotated {
        None => {
            for p in &o.enrolment {
                println!("enrol       {}", p.display());
            }
            eprintln!("next: `vault pack`; nixos-install signs with these keys; enrol them on the first boot (docs/guide/secure-boot.md)");
        }
        Some(r) => {
            println!("retired     {}", r.retired.display());
            println!("1. enrol    {}", r.db_add.display());
            println!("2. deploy   the new db key, then sign the boot files again (lanzaboote: nixos-rebuild boot)");
            println!("3. enrol    {}", r.dbx_add.display());
            eprintln!("in this order: the firmware must trust the new key before anything is signed with it, and forbid the old one only after nothing needs it (docs/guide/secure-boot.md)");
        }
    }
    Ok(ExitCode::Ok)
}
