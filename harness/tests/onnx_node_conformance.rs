//! ONNX's node test cases of every operator the importer knows, through import,
//! specialisation, optimisation, the float64 reference and plans on this host's kernel
//! sets. A case either passes or is refused with an error naming what is unsupported (3-D
//! pools, float16 casts, cubic resizes, …); none may compute wrong numbers or fail
//! otherwise. Needs `ci/fetch-onnx-data.sh`; without the data this test fails.

use harness::conformance;
use harness::node_conformance::{run, Outcome};

#[test]
fn onnx_node_cases_pass_or_are_refused_by_name() {
    let root = conformance::data_dir().join("node");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| {
            panic!("{}: {e}; run ci/fetch-onnx-data.sh (the README's test command does)", root.display())
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    let sets = kernels::host_kernel_sets().0;
    let (mut passed, mut refused, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        match run(dir, &sets) {
            Outcome::Passed(err) => passed.push((name, err)),
            Outcome::Refused(why) => refused.push(format!("{name}: {why}")),
            Outcome::Failed(why) => failed.push(format!("{name}: {why}")),
        }
    }
    for (name, err) in &passed {
        println!("pass  {name:<60} max rel err {err:.1e}");
    }
    for r in &refused {
        println!("refused  {r}");
    }
    println!("{} passed, {} refused, {} failed of {} cases", passed.len(), refused.len(), failed.len(), dirs.len());
    assert!(failed.is_empty(), "cases with wrong results or unclean errors:\n{}", failed.join("\n"));
    // 137 with onnx 1.17.0 (the rest are refused by name: see the printed list).
    assert!(passed.len() >= 137, "only {} cases passed", passed.len());
}
