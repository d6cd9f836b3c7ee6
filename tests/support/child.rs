//! Child processes for cross-process tests that talk to their parent: the
//! test binary itself, running one of its ignored tests
//! ([`super::ignored_test_process`]), with a server's URL in its
//! environment, and a line protocol between the two: the child says its
//! steps on stdout (`step: <what>`), the parent tells it to go on through
//! its stdin.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

/// The URL of the server, for a child process started by a test.
pub const URL_ENV: &str = "REDIS_MUTEX_CHILD_URL";

/// Starts this test binary again, running only the ignored test `scenario`
/// ([`super::ignored_test_process`]), with `url` in [`URL_ENV`]; its stdin
/// and stdout are piped.
pub fn spawn(scenario: &str, url: &str) -> Child {
    super::ignored_test_process(scenario)
        .env(URL_ENV, url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// In the child: the server's URL its parent gave it.
pub fn url() -> String {
    std::env::var(URL_ENV).expect("started by a test through support::child::spawn")
}

/// In the child: reports a step to the parent.
pub fn say(what: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "step: {what}").unwrap();
    out.flush().unwrap();
}

/// In the child: waits until the parent tells it to go on; the line told.
pub fn wait_for_parent() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// In the parent: the child's steps, and a way to tell it to go on.
pub struct Steps {
    stdout: BufReader<ChildStdout>,
    stdin: ChildStdin,
}

impl Steps {
    /// Takes over `child`'s pipes.
    pub fn of(child: &mut Child) -> Steps {
        Steps {
            stdout: BufReader::new(child.stdout.take().unwrap()),
            stdin: child.stdin.take().unwrap(),
        }
    }

    /// The child's next step, past the lines libtest prints around them.
    /// Blocks the thread (inside a multi-thread runtime, call it in
    /// `block_in_place`); panics when the child ended first.
    pub fn next(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.stdout.read_line(&mut line).unwrap();
            assert!(read > 0, "the child ended early");
            // libtest may have begun the line (`test name ... `).
            if let Some((_, step)) = line.trim().split_once("step: ") {
                return step.to_owned();
            }
        }
    }

    /// Tells the child to go on (its [`wait_for_parent`] returns `what`).
    pub fn tell(&mut self, what: &str) {
        writeln!(self.stdin, "{what}").unwrap();
        self.stdin.flush().unwrap();
    }
}
