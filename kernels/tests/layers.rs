//! The kernel crate's modules in layers, each using only its own layer and those below it:
//! reading the sources, every `crate::module` a module names (in code, not in comments) must
//! sit no higher than the module itself. Crate-root items (`crate::KernelSet`, re-exports) are
//! the facade and not checked, nor are unit-test modules (`#[cfg(test)]`, at the end of a file
//! by this crate's convention): they may drive a module with a concrete instruction set's
//! kernel, and are not part of the module graph that ships.

use std::path::{Path, PathBuf};

/// Bottom to top. A new top-level module must be placed here (the test fails until it is).
const LAYERS: &[&[&str]] = &[
    // Memory, vectors, scalar math, epilogues, blocking, the thread team.
    &["aligned", "error", "mat", "simd", "math", "epilogue", "blocking", "threads"],
    // The GEMM (driver and tile) and packed B.
    &["gemm", "pack"],
    // What is built on the GEMM or beside it: convolutions, pooling, row normalisation, the
    // weight packer, and where a set keeps tensors (the device traits, their operations and
    // a CPU set's host device).
    &["conv", "pool", "rows", "packer", "device"],
    // The row and element kernels' per-instruction-set glue.
    &["vector"],
    // The instruction sets, the emulated geometries and the CUDA set.
    &["x86", "arm", "scalar", "emulated", "cuda"],
    // Targets and tuning, which ask the instruction sets what the host can run.
    &["target", "tuning"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read kernels/src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules `src` names as `crate::m` or inside `crate::{m, n::…}`, outside comments and
/// before its unit tests.
fn named_modules(src: &str) -> Vec<String> {
    let mut names = Vec::new();
    let code = src.split("\n#[cfg(test)]\nmod tests {").next().unwrap_or(src);
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let group = rest.strip_prefix('{').map(|g| g.split('}').next().unwrap_or(""));
            let items: Vec<&str> = match group {
                Some(g) => g.split(',').collect(),
                None => vec![rest],
            };
            for item in items {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                    names.push(name);
                }
            }
        }
    }
    names
}

#[test]
fn modules_use_only_their_layer_and_those_below() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under src");
        let top = rel.iter().next().expect("a component").to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" {
            continue;
        }
        let Some(mine) = layer(&top) else {
            violations.push(format!("{}: module `{top}` has no layer in tests/layers.rs", rel.display()));
            continue;
        };
        for name in named_modules(&std::fs::read_to_string(file).expect("read source")) {
            if layer(&name).is_some_and(|theirs| theirs > mine) {
                violations.push(format!(
                    "{} (layer {mine}) names crate::{name} (layer {})",
                    rel.display(),
                    layer(&name).unwrap()
                ));
            }
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} source files found under {}", root.display());
    assert!(violations.is_empty(), "upward imports:\n{}", violations.join("\n"));
}

#[test]
fn the_scan_sees_paths_and_groups_but_not_comments() {
    let src = "use crate::conv::driver;\nuse crate::{gemm::tile, simd, KernelSet};\n// crate::vector in a comment\nlet x = crate::pool::run();";
    assert_eq!(named_modules(src), ["conv", "gemm", "simd", "pool"]);
    let tested = "use crate::gemm::tile;\n\n#[cfg(test)]\nmod tests {\n    use crate::scalar::ScalarF32_4x8;\n}\n";
    assert_eq!(named_modules(tested), ["gemm"]);
}
