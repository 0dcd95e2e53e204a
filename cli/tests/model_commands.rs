//! The model commands (`run`) through the `edgepack` binary: input shapes come from `--shape`
//! or, without it, from the `--input` files.

use std::process::{Command, Output};

use model::Tensor;

fn edgepack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgepack")).args(args).output().expect("run edgepack")
}

/// The `output 0 ...` line of a successful `run`.
fn output_line(args: &[&str]) -> String {
    let o = edgepack(args);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{args:?}: {}\n{stdout}", String::from_utf8_lossy(&o.stderr));
    stdout.lines().find(|l| l.starts_with("output 0")).unwrap_or_else(|| panic!("no output line:\n{stdout}")).to_owned()
}

/// A 32×40 classification model made by `edgepack sample-model` in `dir`.
fn sample_model(dir: &std::path::Path) -> std::path::PathBuf {
    let model = dir.join("m.onnx");
    let o =
        edgepack(&["sample-model", "--kind", "classification", "--size", "32x40", "--out", model.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    model
}

#[test]
fn run_takes_the_input_shape_from_the_input_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = sample_model(dir.path());
    let model_s = model.to_str().unwrap();
    // A non-constant image, so that a wrong layout or shape would change the scores.
    let input = dir.path().join("x.npy");
    let values: Vec<f32> = (0..3 * 32 * 40).map(|i| (i % 97) as f32 / 97.0).collect();
    harness::npy::write(&input, &Tensor::float(vec![1, 3, 32, 40], values)).expect("write input");
    let input_s = input.to_str().unwrap();

    let from_file = output_line(&["run", model_s, "--input", input_s]);
    let from_flag = output_line(&["run", model_s, "--input", input_s, "--shape", "1x3x32x40"]);
    assert!(from_file.contains("shape [1, 2]"), "{from_file}");
    assert_eq!(from_file, from_flag);

    // Neither: the error names the missing flag; no panic.
    let o = edgepack(&["run", model_s]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--shape is required"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A file whose shape the model cannot take: refused by name.
    let wrong = dir.path().join("wrong.npy");
    harness::npy::write(&wrong, &Tensor::float(vec![1, 3, 30, 40], vec![0.5; 3 * 30 * 40])).expect("write");
    let o = edgepack(&["run", model_s, "--input", wrong.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
}

/// The tuning knobs: shown in the run's first line, an override too; a malformed one refuses
/// the kernel set with an error naming the variable (it was once silently ignored).
#[test]
fn tuning_knobs_are_shown_and_a_malformed_one_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = sample_model(dir.path());
    let model_s = model.to_str().unwrap();
    let run = |knob: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_edgepack"));
        c.args(["run", model_s, "--shape", "1x3x32x40", "--kernel-set", "scalar"]).env_remove("EDGEPACK_BLOCKING");
        if let Some(v) = knob {
            c.env("EDGEPACK_BLOCKING", v);
        }
        c.output().expect("run edgepack")
    };
    let first_line = |o: &Output| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_owned();
    let o = run(None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(first_line(&o).ends_with("tuning defaults"), "{}", first_line(&o));
    let o = run(Some("64,8,64"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(first_line(&o).ends_with("tuning EDGEPACK_BLOCKING=64,8,64"), "{}", first_line(&o));
    let o = run(Some("64,8"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("EDGEPACK_BLOCKING=`64,8`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A reader that closes the pipe early (`edgepack bench … | head -1`) ends a model command
/// quietly, by SIGPIPE as it ends `cat`, where it once panicked with "failed printing to
/// stdout: Broken pipe". The pipe's read end is closed before the command starts, so its first
/// line already meets the closed pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_a_model_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let model = sample_model(dir.path());
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_edgepack"))
        .args(["run", model.to_str().unwrap(), "--shape", "1x3x32x40"])
        .stdout(writer)
        .output()
        .expect("run edgepack");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?}: {err}", o.status);
}
