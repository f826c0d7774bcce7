//! agenix: the rules of `secrets.nix` ([`rules`]) and the file of public keys they import
//! ([`keys_file`]).

pub mod keys_file;
pub mod rules;
