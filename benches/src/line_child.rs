//! A child process spoken to one line at a time over its standard input and output: the shape
//! of every interleaved peer (ONNX Runtime's `ort_model.py --serve`, a `bench-check --worker`
//! built from another commit). Dropped, the child is told to stop (end of input) and reaped, so
//! that no process outlives the benchmark.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A running child with piped standard input and output.
pub struct LineChild {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl LineChild {
    /// Starts `command` with piped input and output; `what` names it in errors.
    pub fn spawn(what: &str, mut command: Command) -> io::Result<LineChild> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{what}: cannot start: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(LineChild { what: what.to_owned(), child, stdin, stdout })
    }

    /// An error about this child.
    pub fn error(&self, detail: impl std::fmt::Display) -> io::Error {
        io::Error::other(format!("{}: {detail}", self.what))
    }

    /// The next line the child wrote, trimmed; an error naming its exit status when it ended.
    pub fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            return Err(self.error(format_args!("the process ended ({status})")));
        }
        Ok(line.trim().to_owned())
    }

    /// Sends one request line and reads the reply line.
    pub fn ask(&mut self, request: &str) -> io::Result<String> {
        let stdin = self.stdin.as_mut().ok_or_else(|| io::Error::other("no input pipe"))?;
        writeln!(stdin, "{request}")?;
        stdin.flush()?;
        self.read_line()
    }

    /// Sends a request whose reply is a number of seconds.
    pub fn ask_seconds(&mut self, request: &str) -> io::Result<f64> {
        let line = self.ask(request)?;
        line.parse().map_err(|e| self.error(format_args!("bad reply `{line}`: {e}")))
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
