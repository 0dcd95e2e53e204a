//! Import, specialise, optimise and plan arbitrary bytes: any result but a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(mut g) = model::import(bytes) else { return };
    let shapes: Vec<Vec<usize>> = g.inputs.iter().map(|_| vec![1, 3, 8, 8]).collect();
    if model::specialize(&mut g, &shapes, Default::default()).is_err() {
        return;
    }
    model::optimize(&mut g);
    let set = kernels::kernel_set(kernels::KernelSetId::Scalar).expect("scalar set");
    let _ = model::plan::build(&g, &*set);
});
