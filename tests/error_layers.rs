//! A layer's error travels through the crate-wide `vault::Error` whole: its message, hint and
//! exit code stay its own, and the layer's variant can be asked for again.

use std::path::PathBuf;

use vault::{Error, ExitCode, Hint};

fn keys_step(path: &str) -> Result<(), vault::keys::Error> {
    Err(vault::keys::Error::Exists {
        path: PathBuf::from(path),
    })
}

fn operation(path: &str) -> vault::Result<()> {
    keys_step(path)?;
    Ok(())
}

#[test]
fn a_layer_error_keeps_its_message_hint_and_exit_code() {
    let inner = keys_step("/k/ssh_host_ed25519_key").unwrap_err();
    let outer = operation("/k/ssh_host_ed25519_key").unwrap_err();
    assert_eq!(outer.to_string(), inner.to_string());
    assert_eq!(outer.hint(), inner.hint());
    assert!(outer.hint().is_some());
    assert_eq!(outer.exit_code(), inner.exit_code());
    match outer.layer::<vault::keys::Error>() {
        Some(vault::keys::Error::Exists { path }) => {
            assert_eq!(path, &PathBuf::from("/k/ssh_host_ed25519_key"))
        }
        other => panic!("expected the keys layer's Exists, got {other:?}"),
    }
    assert!(outer.layer::<vault::media::Error>().is_none());
}

#[test]
fn every_layer_reports_io_with_the_same_permission_hint() {
    let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let core = Error::from(vault::error::IoError::new("cannot read", "/x", denied()));
    let keys: Error = vault::keys::Error::io("cannot read", "/x", denied()).into();
    assert_eq!(core.to_string(), keys.to_string());
    assert!(core.to_string().starts_with("cannot read /x: "), "{core}");
    assert_eq!(core.hint(), keys.hint());
    assert!(core.hint().is_some());
    assert_eq!(core.exit_code(), ExitCode::Failure);
}
