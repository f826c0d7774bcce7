//! The `vault` binary: argument parsing, prompts and output. All logic lives in the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
