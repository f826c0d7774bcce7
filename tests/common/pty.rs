//! Commands run in a real pseudo-terminal (expectrl), for prompts and what a terminal shows.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::Session;

/// `cmd` started in a new pty, each `expect` waiting up to 60 s.
pub fn session(cmd: Command) -> Session {
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    s
}

/// The exit code of the session's process; panics if a signal ended it.
pub fn exit_code(s: &mut Session) -> i32 {
    match s.get_process().wait().expect("wait") {
        expectrl::WaitStatus::Exited(_, code) => code,
        other => panic!("the process did not exit normally: {other:?}"),
    }
}

/// `program` with `args`, started by a shell that first turns the pty's echo on (a new pty
/// starts with echo off), as on a console.
pub fn with_echo_on(program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "stty echo && exec \"$0\" \"$@\""]);
    c.arg(program).args(args);
    c
}
