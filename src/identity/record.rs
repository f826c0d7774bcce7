//! Recording an identity in `vault.toml` (`vault host add NAME --identity FILE`): the
//! `[hosts.NAME.identity]` table is written with `toml_edit`, so the user's comments and
//! order survive, replacing one already there (a replaced board or network card).

use std::path::Path;

use toml_edit::{value, Array, DocumentMut, Item, Table};

use crate::hosts::{self, Error};
use crate::manifest::identity::Identity;
use crate::manifest::Manifest;

/// `text` (the manifest at `path`) with host `name`'s identity set to `id`, checked as a
/// whole: an identifier another host records is refused, naming both hosts.
pub fn edit(path: &Path, text: &str, name: &str, id: &Identity) -> Result<String, Error> {
    let edit = |m: String| Error::Edit {
        path: path.into(),
        message: m,
    };
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| edit(e.to_string()))?;
    let hosts = doc
        .entry("hosts")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| edit("`hosts` is not a table".into()))?;
    let host = hosts
        .entry(name)
        .or_insert(Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| edit(format!("`hosts.{name}` is not a table")))?;
    // One written by hand as an inline table is replaced by a table like any other.
    if host.get("identity").is_some_and(Item::is_inline_table) {
        host.remove("identity");
    }
    let table = host
        .entry("identity")
        .or_insert(Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| edit(format!("`hosts.{name}.identity` is not a table")))?;
    table.clear();
    for (key, v) in [
        ("product_uuid", &id.product_uuid),
        ("product_serial", &id.product_serial),
        ("board_serial", &id.board_serial),
    ] {
        if let Some(v) = v {
            table[key] = value(v.as_str());
        }
    }
    for (key, list) in [("macs", &id.macs), ("disks", &id.disks)] {
        if !list.is_empty() {
            table[key] = value(list.iter().map(String::as_str).collect::<Array>());
        }
    }
    let out = doc.to_string();
    Manifest::from_str(path, &out).map_err(|e| {
        edit(format!(
            "the edited manifest would be invalid ({e}); nothing was changed"
        ))
    })?;
    Ok(out)
}

/// Refuses, before anything is written, an identity that cannot be recorded for `name` in the
/// manifest at `path` (one another host already records).
pub fn check(path: &Path, name: &str, id: &Identity) -> Result<(), Error> {
    edit(path, &hosts::read(path)?, name, id).map(|_| ())
}

/// Records `id` as host `name`'s identity in the manifest at `path`: the rename of its new
/// copy is the command's commit (a signal before it changes nothing, exit 128 + n; one after
/// it no longer stops the command).
pub fn record(path: &Path, name: &str, id: &Identity) -> Result<(), Error> {
    let text = hosts::read(path)?;
    let out = edit(path, &text, name, id)?;
    hosts::replace_as_commit(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An identity written by hand as an inline table (`identity = { … }`, as valid in
    /// `vault.toml` as a `[hosts.NAME.identity]` table) is replaced like one, the rest of the
    /// host's table and its comments kept.
    #[test]
    fn an_inline_identity_is_replaced() {
        let p = Path::new("/ws/vault.toml");
        let text = "version = 1\n[hosts.a] # the laptop\nflake = \".#a\"\nidentity = { product_serial = \"OLD-0001\" } # by hand\n";
        assert!(Manifest::from_str(p, text).is_ok());
        let new = Identity {
            product_uuid: Some("6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f".into()),
            macs: vec!["00:00:5e:00:53:01".into()],
            ..Identity::default()
        };
        let out = edit(p, text, "a", &new).unwrap();
        assert!(!out.contains("OLD-0001"), "{out}");
        assert!(
            out.contains("[hosts.a] # the laptop\nflake = \".#a\"\n"),
            "{out}"
        );
        let m = Manifest::from_str(p, &out).unwrap();
        assert_eq!(m.hosts["a"].identity.as_ref(), Some(&new));
        // Anything else under that name is not an identity: refused, said as it is.
        let e = edit(
            p,
            "version = 1\n[hosts.a]\nidentity = \"laptop\"\n",
            "a",
            &new,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("`hosts.a.identity` is not a table"),
            "{e}"
        );
    }
}
