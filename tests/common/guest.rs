//! A QEMU guest driven over its serial console (`-serial stdio`): everything it printed so
//! far, waiting for a string, typing a line, waiting for it to power off.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Per boot, from qemu start to power-off. TCG boots take ~15 s here; the margin is for a
/// loaded CI machine.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(150);

/// The serial console of a running guest: everything it printed so far, and its input.
pub struct Guest {
    pub child: Child,
    stdin: ChildStdin,
    /// Console output so far, and whether qemu closed it (exited).
    out: Arc<(Mutex<(String, bool)>, Condvar)>,
    pub started: Instant,
    /// From qemu start to power-off ([`BOOT_TIMEOUT`] unless set).
    pub timeout: Duration,
}

impl Guest {
    pub fn boot(args: &[String]) -> Guest {
        let mut child = Command::new("qemu-system-x86_64")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("qemu starts");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let out = Arc::new((Mutex::new((String::new(), false)), Condvar::new()));
        let o = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let (m, c) = &*o;
                        m.lock().unwrap().1 = true;
                        c.notify_all();
                        break;
                    }
                    Ok(n) => {
                        let (m, c) = &*o;
                        m.lock()
                            .unwrap()
                            .0
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                        c.notify_all();
                    }
                }
            }
        });
        Guest {
            child,
            stdin,
            out,
            started: Instant::now(),
            timeout: BOOT_TIMEOUT,
        }
    }

    pub fn transcript(&self) -> String {
        self.out.0.lock().unwrap().0.clone()
    }

    /// Waits until `needle` appears for the `nth` time (1-based) in the output.
    pub fn wait_for(&mut self, needle: &str, nth: usize) -> Duration {
        let deadline = self.started + self.timeout;
        let (m, c) = &*self.out;
        let mut text = m.lock().unwrap();
        loop {
            if text.0.matches(needle).count() >= nth {
                return self.started.elapsed();
            }
            let now = Instant::now();
            if now >= deadline || text.1 {
                let t = text.0.clone();
                let why = if text.1 {
                    "the guest stopped"
                } else {
                    "timed out"
                };
                drop(text);
                let _ = self.child.kill();
                panic!("{why} waiting for {needle:?} (#{nth}); console:\n{t}");
            }
            text = c.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    /// Waits until one of `needles` matches the output after byte `from`; returns which one
    /// and the byte offset where its match ends.
    pub fn wait_any(&mut self, needles: &[&regex::Regex], from: usize) -> (usize, usize) {
        let deadline = self.started + self.timeout;
        let (m, c) = &*self.out;
        let mut text = m.lock().unwrap();
        loop {
            let tail = text.0.get(from..).unwrap_or("");
            let hit = needles
                .iter()
                .enumerate()
                .filter_map(|(i, re)| re.find(tail).map(|f| (f.start(), i, from + f.end())))
                .min();
            if let Some((_, i, end)) = hit {
                return (i, end);
            }
            let now = Instant::now();
            if now >= deadline || text.1 {
                let t = text.0.clone();
                let why = if text.1 {
                    "the guest stopped"
                } else {
                    "timed out"
                };
                drop(text);
                let _ = self.child.kill();
                panic!("{why} waiting for one of {needles:?}; console:\n{t}");
            }
            text = c.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    /// Types `text` as it is (no newline added).
    pub fn type_raw(&mut self, text: &str) {
        self.stdin.write_all(text.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn type_line(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.write_all(b"\n").unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn wait_exit(mut self) -> String {
        let deadline = self.started + self.timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread may still be draining the pipe.
                std::thread::sleep(Duration::from_millis(200));
                let t = self.transcript();
                assert!(status.success(), "qemu exited with {status}; console:\n{t}");
                return t;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "the guest did not power off; console:\n{}",
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A test that fails half way leaves no guest running (it would hold its disks, loop devices
/// included).
impl Drop for Guest {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
