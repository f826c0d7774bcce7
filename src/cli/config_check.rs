//! `vault pack`'s check of each host's NixOS configuration: prints the problems (or why the
//! check was skipped) and refuses the pack when there are any.

use vault::config_check::{self, Outcome};
use vault::manifest::Manifest;
use vault::pack::PackPlan;

/// Runs the check; `Ok` with what it did (for `--json`), or the error that stops the pack.
pub fn run(
    manifest: &Manifest,
    plan: &PackPlan,
    flakes: &[String],
    quiet: bool,
    json: bool,
) -> vault::Result<Outcome> {
    let out = config_check::check(manifest, plan, flakes)?;
    if let Some(why) = &out.skipped {
        if !quiet && !json {
            eprintln!("vault: NixOS configuration check skipped: {why}");
        }
    }
    if out.problems.is_empty() {
        return Ok(out);
    }
    let err: vault::Error = config_check::Error::Problems {
        count: out.problems.len(),
    }
    .into();
    if json {
        // One document: the problems and the error (main prints no second one).
        let mut v = super::util::json_error(&err);
        v["config_check"] = serde_json::json!(&out);
        super::json::print(&v)?;
    } else {
        for p in &out.problems {
            eprintln!("{p}");
        }
    }
    Err(err)
}
