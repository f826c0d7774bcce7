//! Recording an identity in `vault.toml` (`vault host add NAME --identity FILE`): the
//! `[hosts.NAME.identity]` table is written with `toml_edit`, so the user's comments and
//! order survive, replacing one already there (a replaced board or network card).

use std::path::Path;

use toml_edit::{value, Array, DocumentMut, Item, Table};

use super::Identity;
use crate::hosts::{self, Error};
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

/// Records `id` as host `name`'s identity in the manifest at `path`.
pub fn record(path: &Path, name: &str, id: &Identity) -> Result<(), Error> {
    let text = hosts::read(path)?;
    let out = edit(path, &text, name, id)?;
    hosts::replace(path, &out)
}
