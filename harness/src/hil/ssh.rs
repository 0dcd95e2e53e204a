//! Commands and files over the system's OpenSSH client.
//!
//! Why OpenSSH (`ssh`) rather than an SSH library: a user's rack is reached the way they reach
//! it by hand (their `~/.ssh/config`, ProxyJump bastions, agents, hardware keys, known hosts),
//! the binary carries no cryptography of its own, and every board image has the server side.
//! Each call is one `ssh` process in batch mode (never a password prompt), with a connect
//! timeout, keep-alives that notice a board that vanished, and a deadline after which the local
//! process is killed; the remote command also runs under `timeout`, so a hung step ends on the
//! board too. Failures are sorted by what a user must do about them ([`Failure`]).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::inventory::Board;

/// Why a command over SSH did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection: refused, no route, DNS, connect timeout.
    Unreachable(String),
    /// The board refused the key (or asked for a password, which batch mode never gives).
    AuthRefused(String),
    /// The board's host key is not the one on record.
    HostKey(String),
    /// The connection broke after it was made (reboot, cable, sshd killed).
    ConnectionLost(String),
    /// The step ran past its limit.
    Timeout(Duration),
    /// The board's disk is full.
    DiskFull(String),
    /// The board cannot execute the binary (another architecture).
    WrongArchitecture(String),
    /// The command ran and failed: exit status and the end of its error output.
    Exit(i32, String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(s) => write!(f, "unreachable: {s}"),
            Failure::AuthRefused(s) => write!(f, "key refused: {s}"),
            Failure::HostKey(s) => write!(f, "host key not as on record: {s}"),
            Failure::ConnectionLost(s) => write!(f, "connection lost: {s}"),
            Failure::Timeout(d) => write!(f, "timed out after {} s", d.as_secs()),
            Failure::DiskFull(s) => write!(f, "disk full on the board: {s}"),
            Failure::WrongArchitecture(s) => write!(f, "wrong architecture: {s}"),
            Failure::Exit(code, s) => write!(f, "exit status {code}: {s}"),
        }
    }
}

/// What a finished command printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// A board reached over SSH.
pub struct Ssh<'a> {
    board: &'a Board,
}

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl<'a> Ssh<'a> {
    /// The client for `board`.
    pub fn new(board: &'a Board) -> Self {
        Ssh { board }
    }

    fn command(&self) -> Command {
        let b = self.board;
        let mut c = Command::new("ssh");
        c.args(["-p", &b.port.to_string(), "-T", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]);
        c.args(["-o", &format!("ConnectTimeout={}", b.connect_timeout.as_secs())]);
        c.args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]);
        c.args(["-o", "StrictHostKeyChecking=accept-new"]);
        if let Some(k) = &b.known_hosts {
            c.arg("-o").arg(format!("UserKnownHostsFile={}", k.display()));
        }
        if let Some(k) = &b.key {
            c.arg("-i").arg(k).args(["-o", "IdentitiesOnly=yes"]);
        }
        for o in &b.ssh_options {
            c.args(["-o", o]);
        }
        if let Some(u) = &b.user {
            c.args(["-l", u]);
        }
        c.arg(&b.host);
        c
    }

    /// Runs the shell command `script` on the board with `limit` (the board's `timeout` ends it
    /// there; the local client is killed a little later if the connection hangs), feeding it
    /// `stdin` when given.
    pub fn run(&self, script: &str, limit: Duration, stdin: Option<&Path>) -> Result<Output, Failure> {
        let secs = limit.as_secs().max(1);
        let remote = format!("timeout -k 5 {secs} sh -c {}", quote(script));
        let mut cmd = self.command();
        cmd.arg(remote).stdout(Stdio::piped()).stderr(Stdio::piped());
        match stdin {
            Some(p) => {
                let f = std::fs::File::open(p)
                    .map_err(|e| Failure::Exit(-1, format!("cannot read {}: {e}", p.display())))?;
                cmd.stdin(f);
            }
            None => {
                cmd.stdin(Stdio::null());
            }
        }
        let child = cmd.spawn().map_err(|e| Failure::Exit(-1, format!("cannot start ssh: {e}")))?;
        let deadline = Instant::now() + limit + Duration::from_secs(15) + self.board.connect_timeout;
        let (status, out) = wait(child, deadline).ok_or(Failure::Timeout(limit))?;
        match status {
            0 => Ok(out),
            code => Err(classify(code, &out.stderr, limit)),
        }
    }

    /// Copies the local file `from` to `to` on the board (written beside and renamed into place:
    /// a broken copy never looks whole), mode `mode`.
    pub fn put(&self, from: &Path, to: &str, mode: &str, limit: Duration) -> Result<(), Failure> {
        let (tmp, to) = (quote(&format!("{to}.part")), quote(to));
        let script = format!("cat > {tmp} && chmod {mode} {tmp} && mv -f {tmp} {to}");
        self.run(&script, limit, Some(from)).map(drop)
    }

    /// The contents of `path` on the board.
    pub fn get(&self, path: &str, limit: Duration) -> Result<Vec<u8>, Failure> {
        self.run(&format!("cat {}", quote(path)), limit, None).map(|o| o.stdout)
    }
}

/// Waits for `child` until `deadline`, reading its output; kills it past the deadline (None).
fn wait(mut child: Child, deadline: Instant) -> Option<(i32, Output)> {
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    status.map(|s| (s.code().unwrap_or(-1), Output { stdout, stderr }))
}

/// Sorts a failed command by its exit status and error output.
pub fn classify(code: i32, stderr: &str, limit: Duration) -> Failure {
    let tail = tail(stderr);
    let has = |needles: &[&str]| needles.iter().any(|n| stderr.contains(n));
    if has(&["No space left on device", "Disk quota exceeded"]) {
        return Failure::DiskFull(tail);
    }
    if has(&["Exec format error", "cannot execute binary file", "exec format"]) {
        return Failure::WrongArchitecture(tail);
    }
    if code == 255 {
        if has(&["Permission denied", "Too many authentication failures"]) {
            return Failure::AuthRefused(tail);
        }
        if has(&["Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED"]) {
            return Failure::HostKey(tail);
        }
        let unreachable = [
            "Connection refused",
            "No route to host",
            "Could not resolve hostname",
            "Network is unreachable",
            "Connection timed out during banner exchange",
            "connect to host",
        ];
        if has(&unreachable) {
            return Failure::Unreachable(tail);
        }
        return Failure::ConnectionLost(if tail.is_empty() { "ssh ended with status 255".into() } else { tail });
    }
    if code == 124 || code == 137 {
        // `timeout` on the board: 124, or 137 when its kill after the grace period was needed.
        return Failure::Timeout(limit);
    }
    Failure::Exit(code, tail)
}

/// The last lines of an error output, one line of printable text (a shell that ran an ELF
/// file as a script echoes its bytes), each line cut at 160 characters.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let clean = |l: &&str| -> String {
        let mut out: String = l.chars().map(|c| if c.is_control() || c == '\u{fffd}' { '?' } else { c }).collect();
        if let Some((i, _)) = out.char_indices().nth(160) {
            out.truncate(i);
            out.push('…');
        }
        out
    };
    lines[lines.len().saturating_sub(3)..].iter().map(clean).collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_sorted_by_what_the_user_must_do() {
        let l = Duration::from_secs(9);
        let c = |code, e: &str| classify(code, e, l);
        assert!(matches!(c(255, "ssh: connect to host 127.0.0.1 port 1: Connection refused"), Failure::Unreachable(_)));
        assert!(matches!(c(255, "root@127.0.0.1: Permission denied (publickey)."), Failure::AuthRefused(_)));
        assert!(matches!(c(255, "Host key verification failed."), Failure::HostKey(_)));
        assert!(matches!(c(255, "Connection to 127.0.0.1 closed by remote host."), Failure::ConnectionLost(_)));
        assert!(matches!(c(255, ""), Failure::ConnectionLost(_)));
        assert_eq!(c(124, ""), Failure::Timeout(l));
        assert!(matches!(c(1, "cat: x: No space left on device"), Failure::DiskFull(_)));
        assert!(matches!(c(126, "sh: 1: ./kernel-report: Exec format error"), Failure::WrongArchitecture(_)));
        assert_eq!(c(3, "a\nb\n\nc\nd\n"), Failure::Exit(3, "b | c | d".into()));
        let garbage = format!("./x: 3: \u{fffd}\u{1}{}: not found", "y".repeat(300));
        let Failure::Exit(_, t) = c(2, &garbage) else { panic!() };
        assert!(t.starts_with("./x: 3: ??y") && t.ends_with('…') && t.chars().count() == 161, "{t}");
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
