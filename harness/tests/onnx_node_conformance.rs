//! ONNX's node test cases of every operator the importer knows (the operator-coverage set
//! of `ci/fetch-onnx-data.sh`), through import, specialisation, optimisation, the float64
//! reference and plans on this host's kernel sets (NEON under qemu in ci/test-arm64.sh).
//! Every case passes, or is excluded by a rule of `harness/data/onnx-node-exclusions.txt`
//! that names why it does not apply (a data type, an opset, training mode, a defect of the
//! test data); a rule that excludes nothing fails too. Needs `ci/fetch-onnx-data.sh`;
//! without the data this test fails.

use harness::conformance;
use harness::node_conformance::{exclusions, run, run_device, Outcome};

/// The case folders of the operator-coverage set, sorted.
fn case_dirs() -> Vec<std::path::PathBuf> {
    let root = conformance::data_dir().join("node");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| {
            panic!("{}: {e}; run ci/fetch-onnx-data.sh (the README's test command does)", root.display())
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn onnx_node_cases_pass_or_are_excluded_with_a_reason() {
    let dirs = case_dirs();
    let rules = exclusions().expect("harness/data/onnx-node-exclusions.txt");
    let mut used = vec![0usize; rules.len()];
    let sets = kernels::host_kernel_sets().0;
    let (mut passed, mut excluded, mut failed) = (0, 0, Vec::new());
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (why, refused) = match run(dir, &sets) {
            Outcome::Passed(err) => {
                println!("pass  {name:<60} max rel err {err:.1e}");
                passed += 1;
                continue;
            }
            Outcome::Refused(why) => (why, true),
            Outcome::Failed(why) => (why, false),
        };
        match rules.iter().position(|r| r.matches(&name, &why)) {
            Some(k) => {
                used[k] += 1;
                excluded += 1;
                println!("excluded  {name}: {}", rules[k].reason);
            }
            None => failed.push(format!("{name} ({}): {why}", if refused { "refused" } else { "failed" })),
        }
    }
    println!("{passed} passed, {excluded} excluded, {} not accounted for, of {} cases", failed.len(), dirs.len());
    assert!(failed.is_empty(), "cases neither passed nor excluded by a rule:\n{}", failed.join("\n"));
    let stale: Vec<String> =
        rules.iter().zip(&used).filter(|(_, &n)| n == 0).map(|(r, _)| format!("{} | {}", r.pattern, r.text)).collect();
    assert!(stale.is_empty(), "exclusion rules that exclude nothing:\n{}", stale.join("\n"));
    // 762 with onnx 1.17.0's operator-coverage set.
    assert!(passed >= 762, "only {passed} cases passed");
}

/// Every case that passes on `sets[0]` run on device sessions of set `id` (f32): passes there
/// too, whether all its steps run on the device or some on the host. Returns (passed, with
/// every step on the device).
fn node_cases_pass_on_device(id: kernels::KernelSetId) -> (usize, usize) {
    let dirs = case_dirs();
    let sets = kernels::host_kernel_sets().0;
    let (mut passed, mut whole, mut refused, mut failed) = (0, 0, Vec::new(), Vec::new());
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !matches!(run(dir, &sets[..1]), Outcome::Passed(_)) {
            continue;
        }
        match run_device(dir, id) {
            (Outcome::Passed(err), on_device) => {
                println!("pass  {name:<60} {} max rel err {err:.1e}", if on_device { "device" } else { "mixed " });
                passed += 1;
                whole += on_device as usize;
            }
            (Outcome::Refused(why), _) => refused.push(format!("{name}: {why}")),
            (Outcome::Failed(why), _) => failed.push(format!("{name}: {why}")),
        }
    }
    println!(
        "{passed} passed on {id} device sessions ({whole} with every step on the device), {} refused:",
        refused.len()
    );
    for r in &refused {
        println!("  refused {r}");
    }
    assert!(failed.is_empty(), "cases that pass on the host but not on {id} device sessions:\n{}", failed.join("\n"));
    (passed, whole)
}

/// The cases on device sessions of this host's first kernel set: the executor's device path
/// (handles into the memory plan's slots, operations, uploads and downloads around host
/// steps, the captured run) on host buffers.
#[test]
fn onnx_node_cases_pass_on_the_host_device() {
    let (passed, whole) = node_cases_pass_on_device(kernels::host_kernel_sets().0[0].info().id);
    assert!(passed >= 700, "only {passed} cases passed on the host device");
    // 165 with onnx 1.17.0's set: the others read or write integer or data-dependent values,
    // or have LayerNorm, MatMul, recurrent or Eval steps, which run on the host.
    assert!(whole >= 160, "only {whole} cases ran every step on the host device");
}

/// The cases on GPU sessions. Needs a GPU (ci/gpu-check.sh runs it).
#[cfg(feature = "cuda")]
#[test]
#[ignore = "skipped: no CUDA device (ci/gpu-check.sh runs it on a GPU machine)"]
fn onnx_node_cases_pass_on_the_gpu() {
    let (passed, _) = node_cases_pass_on_device(kernels::KernelSetId::Cuda);
    assert!(passed >= 700, "only {passed} cases passed on the GPU");
}
