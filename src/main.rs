//! The `vault` binary: argument parsing, prompts and output. All logic lives in the library.

// Prints go through `vault::output`, which never panics on a closed pipe or terminal: these
// shadow std's macros of the same names in every module of the binary.
#[allow(unused_macros)]
macro_rules! println {
    () => { vault::output::out(format_args!(""), true) };
    ($($arg:tt)*) => { vault::output::out(format_args!($($arg)*), true) };
}
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => { vault::output::out(format_args!($($arg)*), false) };
}
#[allow(unused_macros)]
macro_rules! eprintln {
    () => { vault::output::err(format_args!(""), true) };
    ($($arg:tt)*) => { vault::output::err(format_args!($($arg)*), true) };
}
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => { vault::output::err(format_args!($($arg)*), false) };
}

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
