//! ONNX's own Conv / ConvTranspose conformance cases on every kernel set this host runs (and
//! the emulated geometries). Needs `ci/fetch-onnx-data.sh` to have run (the README's test
//! command runs it first); without the data this test fails, it does not skip.

use harness::conformance;
use kernels::KernelSet;

fn sets() -> Vec<Box<dyn KernelSet>> {
    let sets = kernels::host_kernel_sets().0;
    #[cfg(target_arch = "x86_64")]
    let sets = {
        let mut sets = sets;
        sets.push(kernels::emulated::avx512_geometry(None).unwrap());
        sets.push(kernels::emulated::neon_geometry(None).unwrap());
        sets
    };
    sets
}

#[test]
fn onnx_conv_conformance_cases_pass_on_every_set() {
    let root = conformance::data_dir();
    let mut dirs: Vec<_> = ["pytorch-converted", "node"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(root.join(sub)).into_iter().flatten())
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        // The node folder also holds other operators' cases (see onnx_node_conformance.rs).
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().to_lowercase().starts_with("test_conv")))
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no ONNX conformance data under {}: run ci/fetch-onnx-data.sh (the README's test command does)",
        root.display()
    );
    let (mut ran, mut excluded) = (Vec::new(), Vec::new());
    for dir in &dirs {
        match conformance::load(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            Err(reason) => excluded.push(format!("{}: {reason}", dir.display())),
            Ok(case) => {
                for set in sets() {
                    let parity = conformance::run(&*set, &case).unwrap_or_else(|e| panic!("{e}"));
                    println!("{:<45} {:<16} max rel err {:.1e}", case.name, set.info().name, parity.max_rel_err);
                }
                ran.push(case.name);
            }
        }
    }
    println!("{} cases ran; excluded: {excluded:#?}", ran.len());
    // Only 3-D convolutions and ConvInteger are out of scope; every other case must run.
    for e in &excluded {
        assert!(e.contains("3-D") || e.contains("ConvInteger"), "unexpectedly excluded: {e}");
    }
    assert_eq!(ran.len(), 35, "onnx {} ships 35 1-D and 2-D float Conv/ConvTranspose cases", conformance::ONNX_VERSION);
}
