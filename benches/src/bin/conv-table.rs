//! The convolution benchmark table (issue 3): every layer of the mobile-CNN set
//! (`edgepack_benches::conv::mobile_cnn_640`) on this host's fastest kernel set, single
//! thread, in GFLOP/s and % of the FMA peak measured in the same run, against tract running
//! the same single-node ONNX model in the same process, and against ONNX Runtime's timings of
//! those models (from `benches/ort_conv.py`, run by `ci/conv-bench.sh`). Depthwise layers
//! also get the time to stream their input and output through memory once, measured here at
//! the same footprint: the bandwidth bound.
//!
//! ```text
//! conv-table --export DIR            write DIR/<layer>.onnx and DIR/layers.json, then exit
//! conv-table [--ort FILE] [--filter S] [--min-time SECS] [--json FILE]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use edgepack_benches::conv::{file_stem, layer_data, mobile_cnn_640, single_node_model, ConvLayer};
use kernels::{AlignedBuf, Bias, Epilogue, ImageMut, ImageRef, KernelSet, Parallelism, Target};
use tract_onnx::prelude::*;

/// Median seconds of `f` over at least 5 runs and `min_time` seconds, after one warm-up.
fn median_secs(min_time: f64, mut f: impl FnMut()) -> f64 {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || start.elapsed().as_secs_f64() < min_time {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn ours(set: &dyn KernelSet, l: &ConvLayer, min_time: f64) -> f64 {
    let p = &l.params;
    let (w, b, x_nchw) = layer_data(l);
    let [h, wd] = l.hw;
    // The executor keeps activations NHWC in cache-line-aligned slots; convert once, outside
    // the timing.
    let mut x = AlignedBuf::zeroed(x_nchw.len());
    for c in 0..p.c_in {
        for i in 0..h * wd {
            x[i * p.c_in + c] = x_nchw[c * h * wd + i];
        }
    }
    let packed = set.pack_conv(p, &w).expect("pack");
    let [oh, ow] = l.output_hw();
    let mut y = AlignedBuf::zeroed(oh * ow * p.c_out);
    let epi = Epilogue { bias: Bias::PerCol(&b), ..Epilogue::none() };
    median_secs(min_time, || {
        let input = ImageRef::new(&x, [1, h, wd, p.c_in]).expect("input");
        let output = ImageMut::new(&mut y, [1, oh, ow, p.c_out]).expect("output");
        set.conv2d(input, &packed, output, &epi, Parallelism::Sequential).expect("conv");
    })
}

fn tract(l: &ConvLayer, min_time: f64) -> TractResult<f64> {
    let bytes = single_node_model(l);
    let plan = tract_onnx::onnx().model_for_read(&mut &bytes[..])?.into_optimized()?.into_runnable()?;
    let (_, _, x) = layer_data(l);
    let input = Tensor::from_shape(&[1, l.params.c_in, l.hw[0], l.hw[1]], &x)?.into_tvalue();
    let mut err = None;
    let t = median_secs(min_time, || {
        if let Err(e) = plan.run(tvec!(input.clone())) {
            err = Some(e);
        }
    });
    err.map_or(Ok(t), Err)
}

/// Seconds to read `read` floats and write `write` floats once (sum, then fill), single thread,
/// in buffers like the convolution's (cache-line aligned, huge pages from 2 MiB): the faster
/// of two passes, one summing in 16 lanes on x86-64's baseline vectors and one in 128 lanes
/// on the widest vectors this CPU has.
///
/// The wide pass's eight 512-bit (sixteen 256-bit) addition chains leave loads, not the
/// adder's latency, as the limit: inputs that fit in L2 read faster than in the narrow pass,
/// which alone made the bound look easier to meet; on inputs beyond L3 neither pass won
/// consistently (figures: `docs/perf-log/2026-11-28-design-figures.md`).
fn stream_bound(read: usize, write: usize, min_time: f64) -> f64 {
    let mut src = AlignedBuf::zeroed(read);
    src.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
    let mut dst = AlignedBuf::zeroed(write);
    let mut time = |pass: fn(&[f32], &mut [f32])| {
        median_secs(min_time, || {
            pass(std::hint::black_box(&src), &mut dst);
            std::hint::black_box(&dst);
        })
    };
    let narrow = time(read_then_fill::<16>);
    let wide = time(wide_pass);
    narrow.min(wide)
}

/// Sums `src` in `LANES` independent lanes and fills `dst` with the sum.
#[inline(always)]
fn read_then_fill<const LANES: usize>(src: &[f32], dst: &mut [f32]) {
    let mut acc = [0.0f32; LANES];
    for chunk in src.chunks_exact(LANES) {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    dst.fill(acc.iter().sum());
}

/// [`read_then_fill`] in 128 lanes, compiled for the widest vectors the CPU has.
fn wide_pass(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(src: &[f32], dst: &mut [f32]) {
            read_then_fill::<128>(src, dst)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(src: &[f32], dst: &mut [f32]) {
            read_then_fill::<128>(src, dst)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { avx512(src, dst) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2(src, dst) };
        }
    }
    read_then_fill::<128>(src, dst)
}

/// The convolution table of the mobile-CNN layer set.
#[derive(clap::Parser)]
#[command(name = "conv-table")]
struct Args {
    /// Write DIR/<layer>.onnx and DIR/layers.json (for `benches/ort_conv.py`), then exit.
    #[arg(long, value_name = "DIR")]
    export: Option<String>,
    /// ONNX Runtime's timings of the exported models (`benches/ort_conv.py`'s JSON).
    #[arg(long, value_name = "FILE")]
    ort: Option<PathBuf>,
    /// Only the layers whose label contains this, or whose kind it is (`depthwise`, …).
    #[arg(long)]
    filter: Option<String>,
    /// Seconds of measurement per layer and engine, at least.
    #[arg(long, value_name = "SECS", default_value_t = 0.3)]
    min_time: f64,
    /// Write the rows as JSON here too.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let layers: Vec<ConvLayer> = mobile_cnn_640()
        .into_iter()
        .filter(|l| args.filter.as_ref().is_none_or(|f| l.label.contains(f) || l.kind == *f))
        .collect();
    if let Some(dir) = &args.export {
        std::fs::create_dir_all(dir).expect("create export dir");
        let mut list = Vec::new();
        for l in &layers {
            let file = format!("{}.onnx", file_stem(&l.label));
            std::fs::write(format!("{dir}/{file}"), single_node_model(l)).expect("write model");
            let (_, _, x) = layer_data(l);
            list.push(serde_json::json!({ "label": l.label, "file": file, "input": [1, l.params.c_in, l.hw[0], l.hw[1]], "input_len": x.len() }));
        }
        std::fs::write(format!("{dir}/layers.json"), serde_json::to_string_pretty(&list).unwrap()).expect("write list");
        println!("exported {} single-node models to {dir}", layers.len());
        return;
    }
    let min_time = args.min_time;
    let ort: BTreeMap<String, f64> = args
        .ort
        .as_ref()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(f).expect("read ORT timings")).expect("ORT JSON"))
        .unwrap_or_default();
    let set = kernels::select(&Target::host()).expect("host kernel set");
    let peak = || kernels::fma_peak_gflops(&*set, 1 << 24);
    let peak_before = peak();
    println!("# Convolutions, single thread — {} on {}", set.info().name, kernels::host_cpu_name());
    println!();
    println!("| layer | GFLOP | edgepack GFLOP/s | % peak | tract GFLOP/s | ×tract | ORT GFLOP/s | ×ORT | dw: time / stream bound |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for l in &layers {
        let gflop = l.flops() / 1e9;
        let t_ours = ours(&*set, l, min_time);
        let t_tract = tract(l, min_time).map_err(|e| eprintln!("tract failed on {}: {e}", l.label)).ok();
        let t_ort = ort.get(&l.label).copied();
        let bound = (l.kind == "depthwise").then(|| {
            let [oh, ow] = l.output_hw();
            stream_bound(l.hw[0] * l.hw[1] * l.params.c_in, oh * ow * l.params.c_out, min_time)
        });
        rows.push((l.clone(), t_ours, t_tract, t_ort, bound));
        let peak_now = peak_before.unwrap_or(f64::NAN);
        let rate = |t: f64| gflop / t;
        let fmt = |t: Option<f64>| t.map_or("–".to_string(), |t| format!("{:.1}", rate(t)));
        let ratio = |t: Option<f64>| t.map_or("–".to_string(), |t| format!("{:.2}", t / t_ours));
        println!(
            "| {} | {:.3} | {:.1} | {:.0}% | {} | {} | {} | {} | {} |",
            l.label,
            gflop,
            rate(t_ours),
            100.0 * rate(t_ours) / peak_now,
            fmt(t_tract),
            ratio(t_tract),
            fmt(t_ort),
            ratio(t_ort),
            bound.map_or("–".to_string(), |b| format!("{:.2}", t_ours / b)),
        );
    }
    let peak_after = peak();
    println!();
    println!(
        "FMA peak (1 core, {}): {:.1} GFLOP/s before, {:.1} after; % peak uses the first.",
        set.info().name,
        peak_before.unwrap_or(f64::NAN),
        peak_after.unwrap_or(f64::NAN)
    );
    if let Some(path) = &args.json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(l, o, t, r, b)| serde_json::json!({ "label": l.label, "kind": l.kind, "gflop": l.flops() / 1e9, "ours_s": o, "tract_s": t, "ort_s": r, "stream_bound_s": b }))
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).expect("write json");
    }
}
