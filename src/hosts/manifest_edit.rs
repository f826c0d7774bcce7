//! Editing `vault.toml` for `vault host add/remove` with `toml_edit`, so the user's comments
//! and order survive: a host's table filled in, or removed with the comments above it kept.

use std::path::Path;

use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

use super::{Error, KEY_TARGET};
use crate::manifest::Manifest;

pub(crate) fn entry_table(source: &str, target: &str, mode: &str) -> Table {
    let mut t = Table::new();
    t["source"] = value(source);
    t["target"] = value(target);
    t["mode"] = value(mode);
    t
}

/// `vault.toml` with `entry` appended to `[[hosts.NAME.entry]]` (the host's table must
/// exist), checked by parsing the result.
pub(crate) fn push_host_entry(
    path: &Path,
    text: &str,
    name: &str,
    entry: Table,
) -> Result<String, Error> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::edit(path, e.to_string()))?;
    doc.get_mut("hosts")
        .and_then(|h| h.get_mut(name))
        .and_then(Item::as_table_mut)
        .ok_or_else(|| Error::edit(path, format!("`hosts.{name}` is not a table")))?
        .entry("entry")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            Error::edit(
                path,
                format!("`hosts.{name}.entry` is not an array of tables"),
            )
        })?
        .push(entry);
    let out = doc.to_string();
    Manifest::from_str(path, &out).map_err(|e| {
        Error::edit(
            path,
            format!("the edited manifest would be invalid ({e}); nothing was changed"),
        )
    })?;
    Ok(out)
}

/// `vault.toml` with `[hosts.NAME]` filled in (creating it, or completing a table the user
/// started without a key).
pub(super) fn edit_manifest_add(
    path: &Path,
    text: &str,
    name: &str,
    rel_key: &str,
    recipient: &str,
    secrets: &[(&str, Option<String>)],
) -> Result<String, Error> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::edit(path, e.to_string()))?;
    let had_secrets = doc.contains_key("secrets");
    let had_host = doc
        .get("hosts")
        .and_then(|h| h.as_table_like())
        .is_some_and(|h| h.contains_key(name));
    for (key, v) in secrets {
        let Some(v) = v else { continue };
        let secrets = doc
            .entry("secrets")
            .or_insert(Item::Table(Table::new()))
            .as_table_mut()
            .ok_or_else(|| Error::edit(path, "`secrets` is not a table"))?;
        secrets[*key] = value(v.as_str());
    }
    let hosts = doc
        .entry("hosts")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| Error::edit(path, "`hosts` is not a table"))?;
    let host = hosts
        .entry(name)
        .or_insert(Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| Error::edit(path, format!("`hosts.{name}` is not a table")))?;
    host["ssh_host_key"] = value(rel_key);
    host["age_recipient"] = value(recipient);
    let entries = host
        .entry("entry")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            Error::edit(
                path,
                format!("`hosts.{name}.entry` is not an array of tables"),
            )
        })?;
    let has_target = |entries: &ArrayOfTables, t: &str| {
        entries
            .iter()
            .any(|e| e.get("target").and_then(|v| v.as_str()) == Some(t))
    };
    let pub_target = format!("{KEY_TARGET}.pub");
    if !has_target(entries, KEY_TARGET) {
        entries.push(entry_table(rel_key, KEY_TARGET, "0600"));
    }
    if !has_target(entries, &pub_target) {
        entries.push(entry_table(&format!("{rel_key}.pub"), &pub_target, "0644"));
    }
    let out = after_the_comments(&mut doc, name, !had_host, !had_secrets);
    Manifest::from_str(path, &out).map_err(|e| {
        Error::edit(
            path,
            format!("the edited manifest would be invalid ({e}); nothing was changed"),
        )
    })?;
    Ok(out)
}

/// The document's text with the tables `host add` created placed after the comments that
/// end the file, not above them: `vault init`'s template is all comments after `version`, and
/// what they explain (a top-level `recovery_recipients` before any table, the commented
/// examples) must still be right where they stand once a host is added.
fn after_the_comments(
    doc: &mut DocumentMut,
    name: &str,
    new_host: bool,
    new_secrets: bool,
) -> String {
    let trailing = doc.trailing().as_str().unwrap_or("").to_owned();
    if !trailing.contains('#') || !(new_host || new_secrets) {
        return doc.to_string();
    }
    doc.set_trailing("");
    let body = doc.to_string();
    // New tables render after every existing one, so the first new header starts them.
    let headers = [
        new_host.then(|| format!("[hosts.{}]", toml_edit::Key::new(name).display_repr())),
        new_secrets.then(|| "[secrets]".to_owned()),
    ];
    let at = headers
        .iter()
        .flatten()
        .filter_map(|h| {
            body.match_indices(h.as_str())
                .map(|(i, _)| i)
                .find(|&i| i == 0 || body.as_bytes()[i - 1] == b'\n')
        })
        .min();
    match at {
        Some(i) => {
            let before = body[..i].trim_end_matches('\n');
            let comments = trailing.trim_matches('\n');
            format!("{before}\n\n{comments}\n\n{}", &body[i..])
        }
        None => {
            doc.set_trailing(trailing);
            doc.to_string()
        }
    }
}

/// Every table of `item` (itself included) with its position in the document.
fn tables_of<'a>(item: &'a Item, out: &mut Vec<(usize, &'a Table)>) {
    match item {
        Item::Table(t) => {
            if let Some(p) = t.position().filter(|_| !t.is_implicit()) {
                out.push((p, t));
            }
            for (_, child) in t.iter() {
                tables_of(child, out);
            }
        }
        Item::ArrayOfTables(a) => {
            for t in a.iter() {
                if let Some(p) = t.position() {
                    out.push((p, t));
                }
                for (_, child) in t.iter() {
                    tables_of(child, out);
                }
            }
        }
        _ => {}
    }
}

/// Removes `[hosts.NAME]` (and its sub-tables) from the document. The comments above its
/// first header belong to what precedes it (a `vault init` file keeps its commented
/// `[secrets]` block and field explanations there): they move to the table that follows, or
/// to the end of the file. Comments inside the host's tables go with it.
pub(super) fn remove_host_table(doc: &mut DocumentMut, name: &str) {
    let (first, removed_positions) = {
        let mut mine = Vec::new();
        if let Some(h) = doc.get("hosts").and_then(|h| h.get(name)) {
            tables_of(h, &mut mine);
        }
        mine.sort_by_key(|(p, _)| *p);
        let first = mine.first().map(|(p, t)| {
            let prefix = t
                .decor()
                .prefix()
                .and_then(|r| r.as_str())
                .unwrap_or("")
                .to_string();
            (*p, prefix)
        });
        (first, mine.iter().map(|(p, _)| *p).collect::<Vec<_>>())
    };
    if let Some(h) = doc.get_mut("hosts").and_then(|h| h.as_table_like_mut()) {
        h.remove(name);
    }
    let Some((pos, prefix)) = first else { return };
    if !prefix.contains('#') {
        return;
    }
    // The next table in document order that is not the host's.
    let mut all = Vec::new();
    for (_, item) in doc.iter() {
        tables_of(item, &mut all);
    }
    let next = all
        .iter()
        .filter(|(p, _)| *p > pos && !removed_positions.contains(p))
        .map(|(p, _)| *p)
        .min();
    match next {
        Some(next) => {
            if let Some(t) = table_at_mut(doc.as_item_mut(), next) {
                let old = t
                    .decor()
                    .prefix()
                    .and_then(|r| r.as_str())
                    .unwrap_or("")
                    .to_string();
                t.decor_mut().set_prefix(format!("{prefix}{old}"));
            }
        }
        None => {
            let old = doc.trailing().as_str().unwrap_or("").to_string();
            doc.set_trailing(format!("{prefix}{old}"));
        }
    }
}

fn table_at_mut(item: &mut Item, pos: usize) -> Option<&mut Table> {
    match item {
        Item::Table(t) => {
            if t.position() == Some(pos) && !t.is_implicit() {
                return Some(t);
            }
            t.iter_mut().find_map(|(_, child)| table_at_mut(child, pos))
        }
        Item::ArrayOfTables(a) => a.iter_mut().find_map(|t| {
            if t.position() == Some(pos) {
                Some(t)
            } else {
                t.iter_mut().find_map(|(_, child)| table_at_mut(child, pos))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_edit_keeps_comments_and_validates() {
        let p = Path::new("/ws/vault.toml");
        let out = edit_manifest_add(
            p,
            crate::manifest::TEMPLATE,
            "myhost",
            "hosts/myhost/ssh_host_ed25519_key",
            "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
            &[("sops_config", Some("secrets/.sops.yaml".into()))],
        )
        .unwrap();
        assert!(out.starts_with("# vault.toml"));
        assert!(out.contains("# The LUKS passphrase disko reads"));
        let m = Manifest::from_str(p, &out).unwrap();
        let h = &m.hosts["myhost"];
        assert_eq!(h.entries.len(), 2);
        assert_eq!(h.entries[0].mode, Some(0o600));
        assert_eq!(h.entries[1].target, "/etc/ssh/ssh_host_ed25519_key.pub");
        assert_eq!(h.entries[1].mode, Some(0o644));
        assert!(m.secrets.sops_config.is_some());
        // The template's comments come before the tables added to it.
        let comments = out.find("# Recovery keys").unwrap();
        assert!(comments < out.find("[hosts.myhost]").unwrap(), "{out}");
        assert!(comments < out.find("[secrets]\n").unwrap(), "{out}");
    }
}
