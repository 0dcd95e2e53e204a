//! A plan records the tuning knobs it was built under, and its file keeps them: a plan built
//! with the defaults says so (empty), knobs set on a plan survive the file, and a plan file
//! written before plans recorded tuning loads as the defaults.

mod common;

use common::Builder;

fn small_plan() -> model::plan::Plan {
    let shape = vec![1, 4, 5, 5];
    let mut b = Builder::new(&shape);
    b.conv("x", 4, 6, 3, 1, "y");
    b.output("y");
    let prepared = model::prepare(&b.bytes(13), std::slice::from_ref(&shape)).unwrap();
    let set = kernels::kernel_set(kernels::KernelSetId::Scalar).unwrap();
    model::plan::build(&prepared.optimized, &*set).unwrap()
}

#[test]
fn a_plan_records_its_tuning_and_its_file_keeps_it() {
    let mut plan = small_plan();
    // The test process sets no knob; the plan says what the host's tuning says.
    let host = kernels::Tuning::host().unwrap().overrides();
    assert_eq!(plan.tuning, host);
    plan.tuning = vec!["EDGEPACK_BLOCKING=64,48,96".to_string()];
    let back = model::plan::Plan::from_bytes(&plan.to_bytes()).unwrap();
    assert_eq!(back.tuning, ["EDGEPACK_BLOCKING=64,48,96"]);
}

#[test]
fn a_plan_file_without_tuning_loads_as_the_defaults() {
    let mut plan = small_plan();
    plan.tuning = vec!["EDGEPACK_BLOCKING=64,48,96".to_string()];
    let bytes = plan.to_bytes();
    // The header is the first blob after the magic and version: drop its `tuning` field, as
    // an older writer left it out, and fix the blob's length.
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[16..16 + len]).unwrap();
    let old = header.replace(r#","tuning":["EDGEPACK_BLOCKING=64,48,96"]"#, "");
    assert_ne!(old, header, "the header names its tuning: {header}");
    let mut file = bytes[..8].to_vec();
    file.extend_from_slice(&(old.len() as u64).to_le_bytes());
    file.extend_from_slice(old.as_bytes());
    file.extend_from_slice(&bytes[16 + len..]);
    let back = model::plan::Plan::from_bytes(&file).unwrap();
    assert!(back.tuning.is_empty(), "{:?}", back.tuning);
}
