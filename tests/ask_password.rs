//! `vault::prompt::systemd::ask_password` against the real `systemd-ask-password`, with this test
//! playing the password agent: it watches `/run/systemd/ask-password` for the `.ask` file carrying
//! its own `Id=`, parses it, and answers on the socket named there, exactly as
//! `systemd-tty-ask-password-agent` does. systemd need not be running for this; root is needed
//! (the directory is root's, and systemd-ask-password ignores answers not sent by root).
//!
//! And `vault unlock` with no terminal and no agent: it says what it waits for, gives up after
//! its timeout, and a signal (or SIGKILL) to vault ends the question with it, `ask.*` file
//! included.
mod common;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use vault::prompt::systemd::{ask_password, ask_password_with, DEFAULT_TIMEOUT};

const ASK_DIR: &str = "/run/systemd/ask-password";

/// Tool present and running as root; otherwise the reason to skip (CI fails on a missing tool).
fn ready() -> bool {
    if common::require_tool("systemd-ask-password").is_none() {
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: the ask-password protocol needs root (only root may answer)");
        return false;
    }
    true
}

/// systemd's own agent answers every pending question, so questions are asked one at a time.
fn one_question_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn unique_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "vault-test:{}:{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The `[Ask]` section of an `.ask` file.
fn parse_ask(text: &str) -> HashMap<String, String> {
    let mut section = "";
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Ask]" {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// Wait for the question with this id; returns its file and fields.
fn wait_for_question(id: &str) -> (PathBuf, HashMap<String, String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(dir) = std::fs::read_dir(ASK_DIR) {
            for e in dir.flatten() {
                let name = e.file_name();
                if !name.to_string_lossy().starts_with("ask.") {
                    continue;
                }
                // The file is written under a tmp. name and renamed, so it is complete here;
                // it may vanish between listing and reading when another test's question ends.
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    let fields = parse_ask(&text);
                    if fields.get("Id").map(String::as_str) == Some(id) {
                        return (e.path(), fields);
                    }
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no question with Id={id} appeared in {ASK_DIR}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn answer(fields: &HashMap<String, String>, datagram: &[u8]) {
    let socket = fields.get("Socket").expect("Socket= in the .ask file");
    UnixDatagram::unbound()
        .unwrap()
        .send_to(datagram, socket)
        .unwrap_or_else(|e| panic!("sending the answer to {socket}: {e}"));
}

/// Runs `ask_password` on a thread, answers the question it raises with `datagram`, and returns
/// the function's result with the question's fields.
fn ask_and_answer(
    message: &'static str,
    datagram: &[u8],
) -> (Result<String, String>, HashMap<String, String>, PathBuf) {
    let _one = one_question_at_a_time();
    let id = unique_id();
    let (tx, rx) = mpsc::channel();
    let id2 = id.clone();
    thread::spawn(move || {
        let r = ask_password(message, &id2).map(|s| s.expose_secret().to_string());
        let _ = tx.send(r);
    });
    let (file, fields) = wait_for_question(&id);
    // The asking process's argv is exactly what the module documents: id, no timeout, message.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", fields["PID"])).unwrap();
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(
        argv,
        [
            "systemd-ask-password".to_string(),
            format!("--id={id}"),
            format!("--timeout={}", DEFAULT_TIMEOUT.as_secs()),
            "--".to_string(),
            message.to_string(),
        ]
    );
    answer(&fields, datagram);
    let result = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| {
            // Do not leave a systemd-ask-password waiting forever behind a failed test.
            answer(&fields, b"-");
            panic!("ask_password did not return after the answer was sent");
        });
    (result, fields, file)
}

#[test]
fn the_agents_answer_is_returned_and_the_question_is_cleaned_up() {
    if !ready() {
        return;
    }
    let secret = "correct horse battery staple — ünïcode";
    let (result, fields, file) = ask_and_answer(
        "Passphrase for the vault bundle:",
        format!("+{secret}").as_bytes(),
    );
    assert_eq!(result.as_deref(), Ok(secret));
    assert_eq!(fields["Message"], "Passphrase for the vault bundle:");
    // A deadline (systemd's CLOCK_MONOTONIC microseconds); no echo.
    assert!(fields["NotAfter"].parse::<u64>().unwrap() > 0, "{fields:?}");
    assert_eq!(fields["Echo"], "0");
    assert!(!file.exists(), "{} left behind", file.display());
    assert!(!Path::new(&fields["Socket"]).exists(), "socket left behind");
}

#[test]
fn a_message_starting_with_a_dash_is_a_message_not_an_option() {
    if !ready() {
        return;
    }
    let (result, fields, _) = ask_and_answer("--echo=yes is not an option here", b"+x");
    assert_eq!(result.as_deref(), Ok("x"));
    assert_eq!(fields["Message"], "--echo=yes is not an option here");
    assert_eq!(fields["Echo"], "0");
}

#[test]
fn an_empty_answer_is_an_empty_passphrase() {
    if !ready() {
        return;
    }
    let (result, _, _) = ask_and_answer("Passphrase:", b"+");
    assert_eq!(result.as_deref(), Ok(""));
}

#[test]
fn a_cancelled_question_is_an_error() {
    if !ready() {
        return;
    }
    let (result, _, _) = ask_and_answer("Passphrase:", b"-");
    let err = result.expect_err("a cancelled question must not yield a passphrase");
    assert!(err.contains("systemd-ask-password failed"), "{err}");
    assert!(err.to_lowercase().contains("cancel"), "{err}");
}

#[test]
fn a_missing_program_says_what_to_do_instead() {
    let missing = std::ffi::OsStr::new("/nonexistent/systemd-ask-password");
    let err = ask_password_with(missing, "Passphrase:", "vault:test")
        .map(|_| ())
        .expect_err("a missing program cannot answer");
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains("--passphrase-file"), "{err}");
}

#[test]
fn systemds_own_tty_agent_answers_the_question() {
    if !ready()
        || common::require_tool("systemd-tty-ask-password-agent").is_none()
        || common::require_tool("script").is_none()
    {
        return;
    }
    let _one = one_question_at_a_time();
    let id = unique_id();
    let (tx, rx) = mpsc::channel();
    let id2 = id.clone();
    thread::spawn(move || {
        let r = ask_password("Passphrase for the vault bundle:", &id2)
            .map(|s| s.expose_secret().to_string());
        let _ = tx.send(r);
    });
    let (_, fields) = wait_for_question(&id);

    // The agent wants a terminal: `script` gives it a pty and types what we write to its stdin.
    let mut agent = Command::new("script")
        .args([
            "-qec",
            "systemd-tty-ask-password-agent --query",
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = agent.stdin.take().unwrap();
    let mut stdout = agent.stdout.take().unwrap();
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                break;
            }
            seen2.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    // Type once the agent shows the question.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen.lock().unwrap()).contains("Passphrase for the vault") {
        if Instant::now() > deadline {
            answer(&fields, b"-");
            panic!("the agent did not show the question");
        }
        thread::sleep(Duration::from_millis(20));
    }
    stdin.write_all(b"typed at the agent\r").unwrap();
    let result = rx.recv_timeout(Duration::from_secs(20));
    drop(stdin);
    agent.wait().unwrap();
    reader.join().unwrap();
    let shown = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let result = result.unwrap_or_else(|_| {
        answer(&fields, b"-");
        panic!("no answer through systemd-tty-ask-password-agent; it showed: {shown}");
    });
    assert_eq!(result.as_deref(), Ok("typed at the agent"));
    // The agent showed our message, and echoed nothing of what was typed.
    assert!(
        shown.contains("Passphrase for the vault bundle:"),
        "{shown}"
    );
    assert!(!shown.contains("typed at the agent"), "{shown}");
}

/// `vault unlock` in its own session (no controlling terminal), stdin from /dev/null.
fn unlock_without_terminal(d: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(common::vault_bin());
    c.args(["unlock", "b", "--root", "mnt", "--root-not-mountpoint"])
        .args(extra)
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    common::without_terminal(&mut c);
    c
}

#[test]
fn with_no_agent_unlock_says_what_it_waits_for_and_gives_up() {
    if !ready() {
        return;
    }
    let _one = one_question_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    common::one_file_bundle(dir.path(), "right one");
    let o = unlock_without_terminal(dir.path(), &["--ask-password-timeout", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // Before the wait: what it waits for, how to answer, for how long.
    assert!(err.contains("waits for a password agent"), "{err}");
    assert!(err.contains("systemd-tty-ask-password-agent"), "{err}");
    assert!(err.contains("gives up after 2 s"), "{err}");
    // After it: why it gave up, and what to do instead.
    assert!(
        err.contains("no password agent answered within 2 s"),
        "{err}"
    );
    assert!(err.contains("--ask-password-timeout"), "{err}");
    assert!(err.contains("--passphrase-file"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("mnt")).unwrap().count(),
        0
    );
}

fn gone(pid: &str) -> bool {
    // A zombie waiting for init to reap it has ended too.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z'))
    })
}

#[test]
fn the_question_ends_with_vault_however_vault_ends() {
    if !ready() {
        return;
    }
    let _one = one_question_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    common::one_file_bundle(dir.path(), "right one");
    for (signal, code) in [
        (rustix::process::Signal::TERM, Some(143)),
        (rustix::process::Signal::INT, Some(130)),
        (rustix::process::Signal::KILL, None),
    ] {
        let mut vault = unlock_without_terminal(dir.path(), &["--ask-password"])
            .spawn()
            .unwrap();
        let (file, fields) = wait_for_question("vault:unlock");
        let asker = fields["PID"].clone();
        let stat = std::fs::read_to_string(format!("/proc/{asker}/stat")).unwrap();
        let ppid = stat.rsplit(") ").next().unwrap().split(' ').nth(1).unwrap();
        assert_eq!(ppid, vault.id().to_string(), "not this vault's question");
        rustix::process::kill_process(rustix::process::Pid::from_child(&vault), signal).unwrap();
        let status = vault.wait().unwrap();
        assert_eq!(status.code(), code, "{signal:?}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while (file.exists() || !gone(&asker)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let left = file.exists() || !gone(&asker);
        if left {
            // Do not leave it waiting behind a failed test.
            answer(&fields, b"-");
        }
        assert!(
            !left,
            "after {signal:?}, systemd-ask-password {asker} and {} were left behind",
            file.display()
        );
    }
}
