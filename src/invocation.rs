//! How the reader of a hint runs this vault again. On the official installer the carried
//! binary is `/run/vault-bin/vault` and no `vault` is on `PATH`: a hint saying `vault place`
//! would be a command that does not exist there.

/// The program name to put in a hint: `vault` when that is what `vault` on `PATH` runs (it was
/// found there, or is the same file), else the path it was invoked by, made absolute and
/// shell-quoted.
pub fn program() -> String {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("vault"))
            .find(|p| p.is_file())
    });
    let same = |a: &std::path::Path, b: &std::path::Path| matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y);
    let argv0 = std::path::Path::new(&argv0);
    match on_path {
        Some(p) if same(&p, argv0) => "vault".into(),
        _ => program_for(argv0, std::env::current_dir().ok().as_deref()),
    }
}

fn program_for(argv0: &std::path::Path, cwd: Option<&std::path::Path>) -> String {
    let s = argv0.to_string_lossy();
    if !s.contains('/') {
        return "vault".into();
    }
    // `./vault` means nothing once the reader has changed folders.
    let path = match cwd {
        Some(d) if argv0.is_relative() => d.join(argv0),
        _ => argv0.to_path_buf(),
    };
    let path = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect::<std::path::PathBuf>();
    shell_quote(&path.to_string_lossy())
}

/// `s` as one shell word: unchanged when it holds only safe characters, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._+-:,@%=".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `cmd` (a hint starting with `vault `) with `vault` replaced by [`program`].
pub fn command(cmd: &str) -> String {
    match cmd.strip_prefix("vault ") {
        Some(rest) => format!("{} {rest}", program()),
        None => cmd.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_program_as_invoked() {
        let cwd = Some(Path::new("/home/nixos"));
        assert_eq!(program_for(Path::new("vault"), cwd), "vault");
        assert_eq!(
            program_for(Path::new("/run/vault-bin/vault"), cwd),
            "/run/vault-bin/vault"
        );
        assert_eq!(program_for(Path::new("./vault"), cwd), "/home/nixos/vault");
        assert_eq!(
            program_for(Path::new("/iso/my vault/vault"), cwd),
            "'/iso/my vault/vault'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
