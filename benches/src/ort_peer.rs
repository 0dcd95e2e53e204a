//! ONNX Runtime as an interleaved peer: a long-lived `benches/ort_model.py --serve` process
//! (the pinned venv of `ci/fetch-models.sh`) that runs its session on request and reports the
//! time the runs took, so that a whole-model figure alternates edgepack and ORT round by round
//! like the kernel figures do, without counting pipe latency on either side.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The Python of the pinned ONNX Runtime venv (`.cache/venv-ort-<version>`).
pub fn default_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../.cache/venv-ort-{}/bin/python", harness::models::ORT_VERSION))
}

/// One ONNX Runtime session in a child process; dropped, it is told to stop and reaped.
pub struct OrtPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

fn broken(what: &str, detail: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("ONNX Runtime peer: {what}: {detail}"))
}

impl OrtPeer {
    /// Starts ORT on `model` with the input in `input` (`.npy`) and `threads` intra-op
    /// threads; returns once its warm-up run is done.
    pub fn start(python: &Path, model: &Path, input: &Path, threads: usize) -> io::Result<OrtPeer> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ort_model.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(model)
            .arg("--input")
            .arg(input)
            .args(["--threads", &threads.to_string(), "--serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                broken(&format!("cannot start {} (ci/fetch-models.sh makes the venv)", python.display()), e)
            })?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut peer = OrtPeer { child, stdin, stdout };
        let line = peer.read_line()?;
        if line != "ready" {
            return Err(broken(&format!("{} did not start", model.display()), format!("said `{line}`")));
        }
        Ok(peer)
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            return Err(broken("the process ended", status));
        }
        Ok(line.trim().to_owned())
    }

    /// Runs the session once untimed and then `reps` times; returns the seconds the `reps` runs
    /// took, as ORT's process measured them.
    pub fn run(&mut self, reps: usize) -> io::Result<f64> {
        let stdin = self.stdin.as_mut().ok_or_else(|| broken("stopped", "no input pipe"))?;
        writeln!(stdin, "{reps}")?;
        stdin.flush()?;
        let line = self.read_line()?;
        line.parse().map_err(|e| broken(&format!("bad reply `{line}`"), e))
    }
}

impl Drop for OrtPeer {
    fn drop(&mut self) {
        // End of input stops the serve loop; wait so that no process outlives the benchmark.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
