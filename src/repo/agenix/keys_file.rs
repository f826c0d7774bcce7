//! Adding (and removing) a host's `ssh-ed25519` key in the file where the user keeps agenix
//! public keys: a Nix attribute set or list (`keys.nix`) or a JSON object or list. Only the new
//! line is added (plus, in JSON, a comma); the result is read back (`serde_json`, or
//! `nix-instantiate` when installed) and must hold the key.

use std::path::Path;

use regex::Regex;

/// Adds `name`'s public key to an agenix keys file: a JSON object or list, or a Nix attribute
/// set or list (`keys.nix`). Only the new line (and, in JSON, a comma) is added.
pub fn add(path: &Path, text: &str, name: &str, key: &str) -> Result<String, String> {
    if text.contains(key) {
        return Err(String::from("already holds this key"));
    }
    let is_json = path.extension().is_some_and(|e| e == "json");
    let close = last_code_char(text, is_json)
        .ok_or_else(|| String::from("no closing } or ] to add the key before"))?;
    let closer = text.as_bytes()[close];
    let before = text[..close].trim_end();
    let last_line = before.lines().last().unwrap_or("");
    let pad: String = last_line
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let pad = if before.ends_with(['{', '[']) || pad.is_empty() {
        "  ".to_string()
    } else {
        pad
    };
    let js = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let line = match (is_json, closer) {
        (true, b'}') => format!("{pad}{}: {}", js(name), js(key)),
        (true, _) => format!("{pad}{}", js(key)),
        (false, b'}') => format!("{pad}{} = {};", nix_attr(name), js(key)),
        (false, _) => format!("{pad}{}", js(key)),
    };
    let needs_comma = is_json && !before.ends_with(['{', '[']);
    let head = &text[..before.len()];
    let out = format!(
        "{head}{}\n{line}\n{}",
        if needs_comma { "," } else { "" },
        text[before.len()..].trim_start_matches([' ', '\t', '\r', '\n'])
    );
    // Re-read what was written: the key must be there, as a value of the new structure.
    if is_json {
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| format!("the edit would break the JSON ({e}); nothing was changed"))?;
        if !json_holds(&v, key) {
            return Err(String::from(
                "the key is not a top-level value after editing; add it by hand",
            ));
        }
    } else if let Some(v) = nix_eval(path, &out) {
        if !json_holds(&v?, key) {
            return Err(String::from(
                "nix-instantiate does not see the key after editing; add it by hand",
            ));
        }
    }
    Ok(out)
}

/// Whether the file already holds `key`, and the key bound to the attribute or JSON member
/// `name` if that is another one. Comments (Nix `#`) are not looked at.
pub fn registered(path: &Path, text: &str, name: &str, key: &str) -> (bool, Option<String>) {
    let is_json = path.extension().is_some_and(|e| e == "json");
    let key_re = Regex::new(r"ssh-(ed25519|rsa) [A-Za-z0-9+/]+=*").expect("static regex");
    let named =
        Regex::new(&format!(r#"^\s*"?{}"?\s*[=:]"#, regex::escape(name))).expect("escaped name");
    let mut holds = false;
    let mut other = None;
    for line in text.lines() {
        let code = if is_json {
            line
        } else {
            line.split('#').next().unwrap_or("")
        };
        for m in key_re.find_iter(code) {
            if m.as_str() == key {
                holds = true;
            } else if named.is_match(code) && other.is_none() {
                other = Some(m.as_str().to_string());
            }
        }
    }
    (holds, other)
}

fn json_holds(v: &serde_json::Value, key: &str) -> bool {
    match v {
        serde_json::Value::Object(m) => m
            .values()
            .any(|x| x.as_str() == Some(key) || json_holds(x, key)),
        serde_json::Value::Array(a) => a
            .iter()
            .any(|x| x.as_str() == Some(key) || json_holds(x, key)),
        _ => false,
    }
}

fn nix_attr(name: &str) -> String {
    // Host names may hold `.`, which Nix would read as a path; quote those.
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// Position of the last `}`/`]` outside comments (Nix `#` comments; JSON has none).
fn last_code_char(text: &str, json: bool) -> Option<usize> {
    let mut found = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = if json {
            line
        } else {
            line.split('#').next().unwrap_or("")
        };
        if let Some(i) = code.rfind(['}', ']']) {
            found = Some(offset + i);
        }
        offset += line.len();
    }
    found
}

/// Evaluates the edited text of the keys file at `path` when `nix-instantiate` exists (None
/// when it does not): in the file's folder, so that its relative imports resolve as they would
/// in the file, and in restricted mode ([`super::nix_eval`]), reading nothing outside it.
fn nix_eval(path: &Path, text: &str) -> Option<Result<serde_json::Value, String>> {
    crate::hardening::find_program(crate::repo::nix_eval::NIX_INSTANTIATE)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = match std::fs::canonicalize(dir) {
        Ok(d) => d,
        Err(e) => return Some(Err(format!("cannot find {}: {e}", dir.display()))),
    };
    let mut cmd = crate::repo::nix_eval::restricted(&dir, &[]);
    cmd.arg("-E").arg(text);
    Some(crate::repo::nix_eval::json(cmd).map_err(|e| format!("the edit would not evaluate: {e}")))
}

/// Whether `line` (its code, before a Nix `#` comment) holds a host's key: one of `keys`
/// (`type base64`), a key whose ssh-to-age form is `age_recipient`, or a key bound to the
/// attribute / JSON member `name`.
fn holds_host_key(line: &str, name: &str, keys: &[String], age_recipient: Option<&str>) -> bool {
    let key_re = Regex::new(r"ssh-(ed25519|rsa) [A-Za-z0-9+/]+=*").expect("static regex");
    let named = Regex::new(&format!(
        r#"^\s*"?{}"?\s*[=:]\s*"ssh-"#,
        regex::escape(name)
    ))
    .expect("escaped name");
    named.is_match(line)
        || key_re.find_iter(line).any(|m| {
            keys.iter().any(|k| k == m.as_str())
                || age_recipient.is_some_and(|r| {
                    crate::keys::ssh_public_to_age(m.as_str()).is_ok_and(|a| a == r)
                })
        })
}

/// How many public keys (`ssh-…` or `age1…`) a line holds.
fn keys_on(line: &str) -> usize {
    line.matches("\"ssh-").count() + line.matches("\"age1").count()
}

/// Removes the lines holding a host's key from a keys file (and a JSON comma left dangling):
/// the key of the host's `.pub` (`keys`), a key whose ssh-to-age recipient is the one
/// `vault.toml` recorded for the host (the old key, when the `.pub` was already replaced), or
/// the attribute named after the host. A line that holds other keys too is refused.
pub fn remove_host(
    path: &Path,
    text: &str,
    name: &str,
    keys: &[String],
    age_recipient: Option<&str>,
) -> Result<(String, usize), String> {
    let is_json = path.extension().is_some_and(|e| e == "json");
    let mut removed = 0;
    let mut kept = Vec::new();
    for (n, l) in text.split_inclusive('\n').enumerate() {
        let code = if is_json {
            l
        } else {
            l.split('#').next().unwrap_or("")
        };
        if holds_host_key(code, name, keys, age_recipient) {
            if keys_on(code) > 1 {
                return Err(format!(
                    "line {} holds {name}'s key together with other keys; remove it there by hand",
                    n + 1
                ));
            }
            removed += 1;
        } else {
            kept.push(l);
        }
    }
    let mut out = kept.concat();
    if is_json && removed > 0 {
        if serde_json::from_str::<serde_json::Value>(&out).is_err() {
            // The removed line was the last member: drop the comma before the closer.
            if let Some(close) = last_code_char(&out, true) {
                let before = out[..close].trim_end();
                if let Some(stripped) = before.strip_suffix(',') {
                    out = format!("{stripped}{}", &out[before.len()..]);
                }
            }
        }
        serde_json::from_str::<serde_json::Value>(&out)
            .map_err(|e| format!("removing the key would break the JSON ({e})"))?;
    } else if removed > 0 {
        if let Some(v) = nix_eval(path, &out) {
            v.map_err(|e| format!("removing the key: {e}"))?;
        }
    }
    Ok((out, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL0idNvgGiucWgup/mP78zyC23uFjYq0evcWdjGQUaBH";

    #[test]
    fn json_keys_files() {
        let p = Path::new("keys.json");
        let obj = "{\n  \"alice\": \"ssh-ed25519 AAAA\"\n}\n";
        let out = add(p, obj, "web1", KEY).unwrap();
        assert_eq!(
            out,
            format!("{{\n  \"alice\": \"ssh-ed25519 AAAA\",\n  \"web1\": \"{KEY}\"\n}}\n")
        );
        let (back, n) = remove_host(p, &out, "web1", &[KEY.to_string()], None).unwrap();
        assert_eq!((back.as_str(), n), (obj, 1));
        let list = "[\n  \"ssh-ed25519 AAAA\"\n]\n";
        let out = add(p, list, "web1", KEY).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[1], KEY);
        assert!(add(p, &out, "web1", KEY).is_err(), "no duplicates");
    }

    #[test]
    fn nix_keys_files() {
        let p = Path::new("keys.nix");
        let attrs = "# people\n{\n  alice = \"ssh-ed25519 AAAA\"; # laptop\n}\n";
        let out = add(p, attrs, "web1", KEY).unwrap();
        assert_eq!(
            out,
            format!(
                "# people\n{{\n  alice = \"ssh-ed25519 AAAA\"; # laptop\n  web1 = \"{KEY}\";\n}}\n"
            )
        );
        // The old key is found by its ssh-to-age recipient, or by the host's attribute.
        let age = crate::keys::ssh_public_to_age(KEY).unwrap();
        assert_eq!(
            remove_host(p, &out, "other", &[], Some(&age)).unwrap(),
            (attrs.to_string(), 1)
        );
        assert_eq!(
            remove_host(p, &out, "web1", &[], None).unwrap(),
            (attrs.to_string(), 1)
        );
        assert_eq!(
            remove_host(p, &out, "nobody", &[], None).unwrap(),
            (out.clone(), 0)
        );
        let shared = format!("{{\n  all = [ \"{KEY}\" \"ssh-ed25519 AAAA\" ];\n}}\n");
        assert!(remove_host(p, &shared, "web1", &[KEY.to_string()], None).is_err());
        let list = "[\n  \"ssh-ed25519 AAAA\"\n]\n";
        let out = add(p, list, "web.1", KEY).unwrap();
        assert_eq!(out, format!("[\n  \"ssh-ed25519 AAAA\"\n  \"{KEY}\"\n]\n"));
    }
}
