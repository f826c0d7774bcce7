//! The `vault` binary: argument parsing, prompts and output. All logic lives in the library.

mod cli;

fn main() -> std::process::ExitCode {
    // Before any secret is read or any thread started: no core dumps, no programs from the
    // current folder (see vault::hardening).
    if let Some(why) = vault::hardening::at_start().core_dumps {
        eprintln!(
            "warning: cannot turn off core dumps ({why}): a crash could write secrets to disk"
        );
    }
    cli::main()
}
