//! The command-line contract as data: every case under `tests/cmd/` runs the real `vault`
//! binary and compares its exit code, stdout and stderr with the files beside it.
//! `TRYCMD=overwrite cargo test --test cmd` rewrites them (docs/TESTING.md).

#[test]
fn cli_contract() {
    trycmd::TestCases::new()
        .register_bin("vault", std::path::Path::new(env!("CARGO_BIN_EXE_vault")))
        // Help is wrapped to the terminal's width; without a terminal clap reads COLUMNS.
        .env("COLUMNS", "100")
        .case("tests/cmd/*.toml")
        .case("tests/cmd/*.md");
}
