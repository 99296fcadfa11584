//! Running the real `strata` binary from tests, with bounded waits.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_strata");

/// Each line a reader yields, through a channel a test can wait on.
pub fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    rx
}

/// A `strata` process that is killed when dropped, so that a failing test
/// leaves no broker behind (one would hold the test's output open).
pub struct Server(pub Child);

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `strata serve -q --listen LISTEN EXTRA...` and waits, at most
/// `wait`, for its `listening on` line. Returns the process and its port.
/// Without `--data-dir` in `extra`, the broker keeps nothing on disk
/// (`--in-memory`): tests run side by side.
pub fn serve<S: AsRef<OsStr>>(listen: &str, extra: &[S], wait: Duration) -> (Server, u16) {
    let durable = extra.iter().any(|a| a.as_ref() == "--data-dir");
    let mut args: Vec<&OsStr> = extra.iter().map(AsRef::as_ref).collect();
    if !durable {
        args.push(OsStr::new("--in-memory"));
    }
    serve_in(None, listen, &args, wait)
}

/// [`serve`] exactly as given, in the working directory `cwd`.
pub fn serve_in<S: AsRef<OsStr>>(
    cwd: Option<&std::path::Path>,
    listen: &str,
    extra: &[S],
    wait: Duration,
) -> (Server, u16) {
    let mut cmd = Command::new(BIN);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = Server(
        cmd.args(["serve", "-q", "--admin-listen", "off", "--listen", listen])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(child.stdout.take().unwrap());
    let line = lines.recv_timeout(wait).expect("the broker listens");
    let addr: std::net::SocketAddr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("not a listening line: {line}"))
        .parse()
        .unwrap();
    (child, addr.port())
}

/// Runs `strata` with `args` (and `stdin`, if given) to its end; fails
/// the test after `wait`.
pub fn run(args: &[&str], stdin: Option<&str>, wait: Duration) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(wait)
        .unwrap_or_else(|_| panic!("strata {args:?} did not finish within {wait:?}"))
        .unwrap()
}

/// The value of `"key":` in a one-line JSON object, without quotes.
pub fn field(json: &str, key: &str) -> String {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {json}"));
    json[at + key.len() + 3..]
        .split([',', '}'])
        .next()
        .unwrap()
        .trim_matches('"')
        .to_owned()
}
