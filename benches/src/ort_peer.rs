//! ONNX Runtime as an interleaved peer: a long-lived `benches/ort_model.py --serve` process
//! (the pinned venv of `ci/fetch-models.sh`) that runs its session on request and reports the
//! time the runs took, so that a whole-model figure alternates edgepack and ORT round by round
//! like the kernel figures do, without counting pipe latency on either side. It replies once its
//! intra-op threads have stopped spinning, so none of them takes a core from our next block.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::line_child::LineChild;

/// The Python of the pinned ONNX Runtime venv (`.cache/venv-ort-<version>`).
pub fn default_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../.cache/venv-ort-{}/bin/python", harness::models::ORT_VERSION))
}

/// One ONNX Runtime session in a child process; dropped, it is told to stop and reaped.
pub struct OrtPeer {
    child: LineChild,
}

impl OrtPeer {
    /// Starts ORT on `model` with the input in `input` (`.npy`) and `threads` intra-op
    /// threads; returns once its warm-up run is done.
    pub fn start(python: &Path, model: &Path, input: &Path, threads: usize) -> io::Result<OrtPeer> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ort_model.py");
        let mut command = Command::new(python);
        command.arg(script).arg(model).arg("--input").arg(input).args(["--threads", &threads.to_string(), "--serve"]);
        let what = format!(
            "ONNX Runtime peer on {} ({}; ci/fetch-models.sh makes the venv)",
            model.display(),
            python.display()
        );
        let mut child = LineChild::spawn(&what, command)?;
        let line = child.read_line()?;
        if line != "ready" {
            return Err(child.error(format_args!("did not start: said `{line}`")));
        }
        Ok(OrtPeer { child })
    }

    /// Runs the session once untimed and then `reps` times; returns the seconds the `reps` runs
    /// took, as ORT's process measured them.
    pub fn run(&mut self, reps: usize) -> io::Result<f64> {
        self.child.ask_seconds(&reps.to_string())
    }
}
