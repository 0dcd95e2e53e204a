//! Times one convolution on a kernel set with and without its wide tile, and packed for its
//! input size (where the set may pick Winograd), interleaved in one process (peak, main tile,
//! wide tile, for the input, peak, …) so that the machine's drifting speed hits all alike;
//! prints median GFLOP/s (of the direct convolution's flops) and the median per-round
//! fraction of the FMA peak.
//!
//! `cargo run --release -p edgepack-kernels --example quick_conv -- avx2 96 24 3 160 [stride or rows,cols] [threads] [groups] [activation]`
//! (set, input channels, output channels, square kernel, square input side; groups = channels
//! for a depthwise convolution; activation `none` (default), `relu` or `silu`, fused into the
//! store). `QC_COLD=N` writes each call's output to the next of N buffers in turn (N buffers
//! larger than L2 leave every output cold, as in a model, where the next step's output was
//! last touched steps before).

#[path = "common/timing.rs"]
mod timing;

use std::time::Instant;

use kernels::{
    fma_peak_gflops, kernel_set, kernel_set_main_tile_only, Activation, AlignedBuf, ConvParams, Epilogue, ImageMut,
    ImageRef, Parallelism,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let id = timing::set_from_arg(args.first().map(String::as_str));
    let num = |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (c_in, c_out, k, hw, threads) = (num(1, 96), num(2, 24), num(3, 3), num(4, 160), num(6, 1));
    // The stride: one number for both axes, or "rows,cols".
    let stride: Vec<usize> =
        args.get(5).map_or(vec![1], |s| s.split(',').map(|v| v.parse().expect("stride")).collect());
    let strides = [stride[0], *stride.last().expect("stride")];
    let groups = num(7, 1);
    let activation = match args.get(8).map(String::as_str) {
        None | Some("none") => Activation::Identity,
        Some("relu") => Activation::Relu,
        Some("silu") => Activation::Silu,
        Some(other) => panic!("activation {other:?}: expected none, relu or silu"),
    };
    let epilogue = Epilogue { activation, ..Epilogue::none() };
    let params = ConvParams { strides, pads: [k / 2; 4], groups, ..ConvParams::new(c_in, c_out, [k, k]) };
    let [oh, ow] = params.output_hw(hw, hw).expect("valid convolution");
    let sets = [
        ("main tile", kernel_set_main_tile_only(id).expect("set")),
        ("wide tile", kernel_set(id).expect("set")),
        ("for the input", kernel_set(id).expect("set")),
    ];
    let w: Vec<f32> = (0..params.weight_len()).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
    // Activations in cache-line-aligned buffers, as the executor keeps them.
    let mut x = AlignedBuf::zeroed(hw * hw * c_in);
    x.iter_mut().enumerate().for_each(|(i, v)| *v = (i % 7) as f32 * 0.1);
    let mut packed: Vec<_> = sets[..2].iter().map(|(_, s)| s.pack_conv(&params, &w).expect("pack")).collect();
    packed.push(sets[2].1.pack_conv_for_input(&params, &w, [hw, hw]).expect("pack"));
    let cold: usize = std::env::var("QC_COLD").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let mut outs = vec![AlignedBuf::zeroed(oh * ow * c_out); 3 * cold];
    // The thread team a model run uses (helpers spin between calls), not a rayon pool.
    let team = kernels::threads::Team::new(threads).expect("team");
    let par = if threads > 1 { Parallelism::Threads } else { Parallelism::Sequential };
    let mut times: Vec<Vec<f64>> = vec![vec![]; 3];
    let mut peaks = Vec::new();
    // Each timed sample repeats the call `reps` times (about 20 ms of work) inside one team
    // run, as a model's steps run.
    let mut run = |i: usize, reps: usize| {
        let set = &sets[i].1;
        let t = team.install(|| {
            let t = Instant::now();
            for rep in 0..reps {
                let input = ImageRef::new(&x, [1, hw, hw, c_in]).expect("input");
                let output = ImageMut::new(&mut outs[i * cold + rep % cold], [1, oh, ow, c_out]).expect("output");
                set.conv2d(input, &packed[i], output, &epilogue, par).expect("conv");
            }
            t.elapsed().as_secs_f64()
        });
        t / reps as f64
    };
    let reps = (0.02 / run(0, 1)).clamp(1.0, 10_000.0) as usize;
    for _ in 0..40 {
        peaks.push(fma_peak_gflops(&*sets[0].1, 1 << 22).unwrap_or(f64::NAN));
        for (i, t) in times.iter_mut().enumerate() {
            t.push(run(i, reps));
        }
    }
    // The tiles split K at different depths, and Winograd transforms: the sums round
    // differently, so compare loosely.
    for other in outs.iter().step_by(cold).skip(1) {
        let worst =
            outs[0].iter().zip(other.iter()).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "the variants disagree by {worst:e}");
    }
    println!("packed for the input: {:?}", packed[2].algorithm());
    let flops = 2.0 * (oh * ow * c_out * c_in / groups * k * k) as f64;
    let info = sets[1].1.info();
    println!(
        "{c_in}->{c_out} {k}x{k}/{strides:?} @{hw}, {activation:?}, {threads} thread(s), {}, {:?}:",
        info.name, info.blocking
    );
    let labels: Vec<String> = sets.iter().map(|(name, _)| name.to_string()).collect();
    timing::report(&labels, &times, &peaks, flops);
}
