//! The CUDA set against cuBLAS on the same GPU in the same run: f32 GEMM (cuBLAS SGEMM),
//! f16 GEMM with f32 accumulation (cuBLAS GemmEx f16/f32-compute, tensor cores), and the
//! convolution shapes of the real models (each dense one against cuBLAS on its implicit GEMM's
//! m × n × k). Times are CUDA-event medians of 20 runs after 3 warm-ups; our output is compared
//! with cuBLAS's (max difference relative to cuBLAS's largest value: above 1e-4 in f32 or 1e-2
//! in f16, or any NaN, fails the run).
//!
//! With `--models`, also the real models (`harness::models`, `EDGEPACK_CACHE`) end to end on a
//! GPU session at batch 1 and 8 (wall time of `run`, host input to host output: median of 20
//! runs), with the session's host↔device copies, the steps left on the host and whether the
//! run was replayed as a CUDA graph; `--only-models`: those rows alone.
//!
//! Each model row also times `run_bound` (input already in the session's page-locked buffer,
//! outputs into page-locked ones: ORT's I/O binding) and checks its outputs equal `run`'s; then
//! 1, 2 and 4 sessions sharing one upload of the weights, each on its own lane in its own
//! thread, give the batch-1 throughput of concurrent callers.
//!
//! `cuda-bench [--json FILE] [--quick] [--f16-gemm] [--models] [--only-models] [--profile]
//! [--zoo name,name]` (`--zoo`: zoo models after the PP-OCR ones)
//! (`--profile`: each model's device time by phase and operator at batch 1; `--f16-gemm`:
//! only the f16 GEMM rows, for sweeping the tensor-core geometry with
//! `EDGEPACK_MMA=bn,bk,stages` and `EDGEPACK_WGMMA=stages|off`).

use std::sync::Arc;

use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{sys::CUevent_flags, CudaSlice};
use half::f16;
use kernels::cuda::{gpu, DeviceBuf, DeviceConv, DeviceEpilogue, DeviceMatrix, DeviceTensor, Gpu, Precision};
use kernels::{kernel_set, ConvParams, KernelSet, KernelSetId, MatRef};

fn time_ms(g: &Gpu, mut f: impl FnMut()) -> f64 {
    let ctx = g.context();
    for _ in 0..3 {
        f();
    }
    let mut times = Vec::new();
    for _ in 0..20 {
        let start = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).expect("event");
        let end = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).expect("event");
        start.record(g.stream()).expect("record");
        f();
        end.record(g.stream()).expect("record");
        times.push(start.elapsed_ms(&end).expect("elapsed") as f64);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Each image of `outs` (a batch of `batch` copies of ORT's input) against ORT's outputs for
/// one image under `bound`: the worst norm-wise error (`max|y − o| / max|o|`), and the first
/// failure.
fn vs_ort(outs: &[model::Tensor], ort: &[model::Tensor], batch: usize, bound: f64) -> (f64, Option<String>) {
    let (mut worst, mut failure) = (0.0f64, None);
    for (y, o) in outs.iter().zip(ort) {
        let expected: Vec<f64> = o.floats().expect("float output").iter().map(|&v| f64::from(v)).collect();
        for image in y.floats().expect("float output").chunks(expected.len()).take(batch) {
            let image = model::Tensor::float(o.shape.clone(), image.to_vec());
            let p = harness::model_parity::compare("vs ORT", &image, &expected, &o.shape, bound);
            worst = worst.max(p.max_rel_err);
            failure = failure.or(p.failure);
        }
    }
    (worst, failure)
}

/// Device time of one run by phase and by operator (the steps launched one by one, each
/// waited for; the best of 5 runs per step).
fn print_profile(plan: &model::plan::Plan, session: &mut model::plan::Session<'_>, input: &model::Tensor) {
    let mut best = vec![f64::INFINITY; plan.steps.len()];
    let mut phases = [f64::INFINITY; 3];
    for _ in 0..5 {
        let mut t = vec![0.0; plan.steps.len()];
        let (_, ph) = session.run_device_profiled(std::slice::from_ref(input), &mut t).expect("profiled run");
        best.iter_mut().zip(&t).for_each(|(b, &x)| *b = b.min(x));
        phases.iter_mut().zip(ph).for_each(|(p, x)| *p = p.min(x));
    }
    let mut by_op: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    for (ps, &t) in plan.steps.iter().zip(&best) {
        let e = by_op.entry(ps.op.as_str()).or_default();
        (e.0, e.1) = (e.0 + t, e.1 + 1);
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!(
        "    profile: upload {:.3} ms, {} steps {:.3} ms (one by one), download {:.3} ms; by operator:",
        phases[0],
        plan.steps.len(),
        best.iter().sum::<f64>(),
        phases[2]
    );
    for (op, (ms, n)) in ops.iter().take(14) {
        println!("      {op:<40} {n:4} steps {ms:8.3} ms");
    }
    let mut steps: Vec<(usize, f64)> = best.iter().copied().enumerate().collect();
    steps.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("    slowest steps:");
    for &(s, ms) in steps.iter().take(12) {
        let ps = &plan.steps[s];
        let out = &plan.values[model::plan::output_of(&ps.step)];
        let ins: Vec<_> = model::plan::inputs_of(&ps.step).iter().map(|&v| plan.values[v].shape.clone()).collect();
        println!("      {:8.3} ms  {:<32} {:?} -> {:?}", ms, ps.op, ins, out.shape);
    }
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = harness::rng::SplitMix::new(seed);
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

fn f32_of(t: &DeviceTensor) -> &CudaSlice<f32> {
    match t.buf() {
        DeviceBuf::F32(s) => s,
        DeviceBuf::F16(_) => panic!("expected f32"),
    }
}

fn f16_of(t: &DeviceTensor) -> &CudaSlice<f16> {
    match t.buf() {
        DeviceBuf::F16(s) => s,
        DeviceBuf::F32(_) => panic!("expected f16"),
    }
}

/// Row-major `C = A·B` through cuBLAS's column-major API (`Cᵀ = Bᵀ·Aᵀ`).
fn cublas_config<T>(m: usize, n: usize, k: usize, one: T, zero: T) -> GemmConfig<T> {
    GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_N,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: n as i32,
        n: m as i32,
        k: k as i32,
        alpha: one,
        lda: n as i32,
        ldb: k as i32,
        beta: zero,
        ldc: n as i32,
    }
}

fn max_rel_diff(g: &Gpu, ours: &DeviceTensor, theirs: &DeviceTensor) -> f64 {
    let (mut a, mut b) = (vec![0.0; ours.len()], vec![0.0; theirs.len()]);
    g.download(ours, &mut a).expect("download");
    g.download(theirs, &mut b).expect("download");
    // NaN anywhere (in either output) reads as an infinite difference: f64::max would drop it.
    if a.iter().chain(&b).any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE) as f64;
    a.iter().zip(&b).map(|(x, y)| ((x - y).abs() as f64) / scale).fold(0.0, f64::max)
}

struct Row {
    name: String,
    precision: Precision,
    gflop: f64,
    ours_ms: f64,
    cublas_ms: Option<f64>,
    diff: f64,
}

/// `m × n × k` GEMM in `p`: ours, then cuBLAS, on the same operands.
fn gemm_row(
    g: &Gpu,
    blas: &CudaBlas,
    set: &dyn KernelSet,
    name: &str,
    (m, n, k): (usize, usize, usize),
    p: Precision,
) -> Row {
    let (a, b) = (random(m * k, 1), random(k * n, 2));
    let packed = set.pack_b(MatRef::row_major(&b, k, n).expect("B"));
    let w = DeviceMatrix::upload(g, &packed, p).expect("weights");
    let da = g.upload(&a, p).expect("A");
    let db = g.upload(&b, p).expect("B");
    let mut ours = g.zeros(m * n, p).expect("C");
    let mut theirs = g.zeros(m * n, p).expect("C");
    let epi = DeviceEpilogue::default();
    let ours_ms = time_ms(g, || g.gemm(&da, m, &w, &epi, None, &mut ours).expect("gemm"));
    let cublas_ms = time_ms(g, || match p {
        // SAFETY: the buffers hold m·k, k·n and m·n elements, as the configuration says.
        Precision::F32 => unsafe {
            let mut c = theirs_f32(&mut theirs);
            blas.gemm(cublas_config(m, n, k, 1.0f32, 0.0), f32_of(&db), f32_of(&da), &mut c).expect("sgemm");
        },
        // SAFETY: as above, f16.
        Precision::F16 => unsafe {
            let mut c = theirs_f16(&mut theirs);
            blas.gemm(cublas_config(m, n, k, f16::ONE, f16::ZERO), f16_of(&db), f16_of(&da), &mut c).expect("hgemm");
        },
    });
    g.synchronize().expect("sync");
    let diff = max_rel_diff(g, &ours, &theirs);
    Row {
        name: name.into(),
        precision: p,
        gflop: 2.0 * (m * n * k) as f64 / 1e9,
        ours_ms,
        cublas_ms: Some(cublas_ms),
        diff,
    }
}

fn theirs_f32(t: &mut DeviceTensor) -> cudarc::driver::CudaViewMut<'_, f32> {
    match t.buf_mut() {
        DeviceBuf::F32(s) => s.as_view_mut(),
        DeviceBuf::F16(_) => panic!("expected f32"),
    }
}

fn theirs_f16(t: &mut DeviceTensor) -> cudarc::driver::CudaViewMut<'_, f16> {
    match t.buf_mut() {
        DeviceBuf::F16(s) => s.as_view_mut(),
        DeviceBuf::F32(_) => panic!("expected f16"),
    }
}

/// One convolution of a real model, batch `n`, ours in `p`; dense ones also as cuBLAS on the
/// implicit GEMM's shape (a lower bound on what an im2col + cuBLAS path would take).
fn conv_row(
    g: &Gpu,
    blas: &CudaBlas,
    set: &dyn KernelSet,
    name: &str,
    params: ConvParams,
    dims: [usize; 4],
    p: Precision,
) -> Row {
    let [n, h, w, _] = dims;
    let [oh, ow] = params.output_hw(h, w).expect("shape");
    let weights = random(params.weight_len(), 3);
    let packed = set.pack_conv(&params, &weights).expect("pack");
    let dw = DeviceConv::upload(g, &packed, p).expect("weights");
    let x = g.upload(&random(dims.iter().product(), 4), p).expect("input");
    let mut y = g.zeros(n * oh * ow * params.c_out, p).expect("output");
    let epi = DeviceEpilogue::default();
    let ours_ms = time_ms(g, || {
        g.conv2d(&x, dims, &dw, &epi, None, &mut y).expect("conv");
    });
    let (m, nn, k) = (n * oh * ow, params.c_out_per_group(), params.taps() * params.c_in_per_group());
    let gflop = 2.0 * (m * nn * k * params.groups) as f64 / 1e9;
    let cublas_ms = (!params.is_depthwise() && params.groups == 1)
        .then(|| gemm_row(g, blas, set, name, (m, nn, k), p).cublas_ms.unwrap());
    Row { name: name.into(), precision: p, gflop, ours_ms, cublas_ms, diff: f64::NAN }
}

/// A whole model for the GPU rows: its file, input shape (batch 1), ORT's input and outputs.
struct ModelCase {
    name: String,
    bytes: Vec<u8>,
    shape: Vec<usize>,
    input: model::Tensor,
    ort: Vec<model::Tensor>,
}

/// The PP-OCR models, then the zoo models named by `--zoo a,b,c`.
fn model_cases(zoo: &[String]) -> Vec<ModelCase> {
    let mut cases: Vec<ModelCase> = harness::models::selected()
        .into_iter()
        .map(|m| {
            let (input, ort) = m.ort_case().expect("ORT case");
            ModelCase { name: m.name.into(), bytes: m.bytes().expect("model file"), shape: m.shape(), input, ort }
        })
        .collect();
    for name in zoo {
        let m = harness::zoo::find(name).expect("zoo model");
        let (input, ort) = m.ort_case().expect("ORT case");
        cases.push(ModelCase {
            name: m.name.clone(),
            bytes: m.bytes().expect("model file"),
            shape: m.shape,
            input,
            ort,
        });
    }
    cases
}

/// Median wall time of 20 calls of `f` after 3 warm-ups, ms.
fn wall_ms(mut f: impl FnMut()) -> f64 {
    let mut times = Vec::new();
    for i in 0..23 {
        let t = std::time::Instant::now();
        f();
        if i >= 3 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// One model's rows at `batch` (f32 and f16 storage): `run` from a host tensor and
/// `run_bound` from the session's page-locked input, each checked against ORT; returns the
/// rows beyond the parity bound.
fn model_rows(
    set: &dyn KernelSet,
    case: &ModelCase,
    batch: usize,
    profile: bool,
    out: &mut Vec<serde_json::Value>,
) -> usize {
    let name = &case.name;
    let mut shape = case.shape.clone();
    shape[0] = batch;
    let prepared = match model::prepare(&case.bytes, &[shape.clone()]) {
        Ok(p) => p,
        Err(e) => {
            println!("| {name} | {batch} | | not run: {e} | | | | | | | |");
            return 0;
        }
    };
    let data: Vec<f32> = (0..batch).flat_map(|_| case.input.floats().expect("float input").iter().copied()).collect();
    let input = model::Tensor::float(shape, data);
    let plan = model::plan::build(&prepared.optimized, set).expect("plan");
    let mut mismatches = 0;
    for p in [Precision::F32, Precision::F16] {
        let mut session = plan.device_session(p).expect("session");
        let outs = session.run(std::slice::from_ref(&input)).expect("run");
        let bound = match p {
            Precision::F32 => harness::model_parity::F32_BOUND,
            Precision::F16 => harness::model_parity::F16_MODEL_BOUND,
        };
        let (diff, failure) = vs_ort(&outs, &case.ort, batch, bound);
        if let Some(why) = failure {
            eprintln!("cuda-bench: {name} {p:?} batch {batch} vs ORT: {why}");
            mismatches += 1;
        }
        let ms = wall_ms(|| {
            session.run(std::slice::from_ref(&input)).expect("run");
        });
        let (up, down) = session.transfers();
        let host: Vec<String> = session.host_steps().into_iter().map(str::to_owned).collect();
        let where_ = if host.is_empty() { "every step".to_owned() } else { format!("host: {host:?}") };
        let graph = match (session.whole_on_device(), session.graph_error()) {
            (false, _) => "no".to_owned(),
            (true, None) => "yes".to_owned(),
            (true, Some(e)) => format!("failed: {e}"),
        };
        // The page-locked path: the input written once into the session's buffer (as a
        // decoder would), then runs from it; its outputs must equal `run`'s.
        let bound_ms = session.whole_on_device().then(|| {
            session.input_mut(0).expect("page-locked input").copy_from_slice(input.floats().expect("float input"));
            let ms = wall_ms(|| session.run_bound().expect("page-locked run"));
            for (o, y) in outs.iter().enumerate() {
                if session.output(o).expect("page-locked output") != y.floats().expect("float output") {
                    eprintln!("cuda-bench: {name} {p:?} batch {batch}: page-locked output {o} differs from run's");
                    mismatches += 1;
                }
            }
            ms
        });
        let best = bound_ms.unwrap_or(ms);
        println!(
            "| {name} | {batch} | {p:?} | {ms:.3} | {} | {:.0} | {up} | {down} | {where_} | {graph} | {diff:.1e} |",
            bound_ms.map_or("—".into(), |b| format!("{b:.3}")),
            batch as f64 / best * 1e3
        );
        if profile && batch == 1 && session.whole_on_device() {
            print_profile(&plan, &mut session, &input);
        }
        out.push(serde_json::json!({ "model": name, "batch": batch, "precision": format!("{p:?}"), "ms": ms, "page_locked_ms": bound_ms, "uploads": up, "downloads": down, "host_steps": host, "graph": graph, "max_rel_diff_vs_ort": diff }));
    }
    mismatches
}

/// Batch-1 throughput of 1, 2 and 4 sessions over one [`model::plan::DeviceWeights`], each in a
/// thread of its own running `run_bound` 50 times from the same start; returns the sessions
/// whose outputs differ from the first one's.
fn concurrency_rows(set: &dyn KernelSet, case: &ModelCase, out: &mut Vec<serde_json::Value>) -> usize {
    // (A model that does not prepare has its "not run" row above.)
    let Ok(prepared) = model::prepare(&case.bytes, std::slice::from_ref(&case.shape)) else { return 0 };
    let plan = model::plan::build(&prepared.optimized, set).expect("plan");
    let input = case.input.floats().expect("float input");
    let mut mismatches = 0;
    for p in [Precision::F32, Precision::F16] {
        let weights = plan.device_weights(p).expect("weights");
        if !weights.whole_on_device() {
            continue;
        }
        let mut single = 0.0;
        for n in [1usize, 2, 4] {
            let mut sessions: Vec<_> = (0..n).map(|_| weights.session().expect("session")).collect();
            for s in &mut sessions {
                s.input_mut(0).expect("page-locked input").copy_from_slice(input);
                s.run_bound().expect("warm-up run");
            }
            let start = std::sync::Barrier::new(n);
            const RUNS: usize = 50;
            let t = std::time::Instant::now();
            std::thread::scope(|sc| {
                for s in &mut sessions {
                    let start = &start;
                    sc.spawn(move || {
                        start.wait();
                        for _ in 0..RUNS {
                            s.run_bound().expect("run");
                        }
                    });
                }
            });
            let rate = (n * RUNS) as f64 / t.elapsed().as_secs_f64();
            if n == 1 {
                single = rate;
            }
            let first = sessions[0].output(0).expect("output").to_vec();
            let equal = sessions.iter_mut().all(|s| s.output(0).expect("output") == first.as_slice());
            if !equal {
                eprintln!("cuda-bench: {} {p:?}: {n} concurrent sessions' outputs differ", case.name);
                mismatches += 1;
            }
            println!(
                "| {} | {p:?} | {n} | {rate:.0} | {:.2} | {} |",
                case.name,
                rate / single,
                if equal { "yes" } else { "NO" }
            );
            out.push(serde_json::json!({ "model": case.name, "precision": format!("{p:?}"), "sessions": n, "images_per_s": rate, "outputs_equal": equal }));
        }
    }
    mismatches
}

/// The device line and the kernels' register and spill report.
fn print_device(g: &Gpu) {
    println!(
        "device: {} (sm_{}), NVRTC {}.{}, tensor cores: {}, wgmma kernel: {}, tuning: {}",
        g.name(),
        g.sm(),
        g.nvrtc_version().0,
        g.nvrtc_version().1,
        g.tensor_core_kernel(),
        if g.has_wgmma() { "yes, for n > 128" } else { "no" },
        kernels::Tuning::host().expect("checked when the GPU was opened"),
    );
    for k in g.kernel_stats() {
        println!(
            "  {:14} {:3} registers, {:5} B smem, spills {}/{} B",
            k.name, k.registers, k.smem, k.spill_stores, k.spill_loads
        );
    }
}

/// The GEMM and convolution rows, timed against cuBLAS (`precisions` each).
fn kernel_rows(
    g: &Gpu,
    blas: &CudaBlas,
    set: &dyn KernelSet,
    precisions: &[Precision],
    quick: bool,
    gemm_only: bool,
) -> Vec<Row> {
    let big = if quick { 1024 } else { 4096 };
    let mut rows = Vec::new();
    for &p in precisions {
        for s in [big, 1024] {
            rows.push(gemm_row(g, blas, set, &format!("gemm {s}³"), (s, s, s), p));
        }
        rows.push(gemm_row(g, blas, set, "gemm 4000×1000×600 (tails)", (4000, 1000, 600), p));
        if gemm_only {
            continue;
        }
        let c = |c_in, c_out, k: usize, s: usize, pad: usize, groups| ConvParams {
            strides: [s, s],
            pads: [pad; 4],
            groups,
            ..ConvParams::new(c_in, c_out, [k, k])
        };
        let shapes: [(&str, ConvParams, [usize; 4]); 6] = [
            ("det stem 3×3/2 3→16 640²", c(3, 16, 3, 2, 1, 1), [1, 640, 640, 3]),
            ("det FPN 3×3 96→24 160²", c(96, 24, 3, 1, 1, 1), [1, 160, 160, 96]),
            ("det 1×1 96→96 160²", c(96, 96, 1, 1, 0, 1), [1, 160, 160, 96]),
            ("det dw 3×3 96 160²", c(96, 96, 3, 1, 1, 96), [1, 160, 160, 96]),
            ("dense 3×3 256→256 64² ×8", c(256, 256, 3, 1, 1, 1), [8, 64, 64, 256]),
            ("1×1 512→512 32² ×32", c(512, 512, 1, 1, 0, 1), [32, 32, 32, 512]),
        ];
        for (name, params, dims) in shapes {
            rows.push(conv_row(g, blas, set, name, params, dims, p));
        }
    }
    rows
}

/// Prints the kernel rows' table and adds them to the JSON report; returns how many differ
/// from cuBLAS beyond the limit.
fn report_kernel_rows(rows: &[Row], out: &mut Vec<serde_json::Value>) -> usize {
    println!("\n| case | storage | GFLOP | edgepack ms | cuBLAS ms | edgepack TFLOP/s | cuBLAS TFLOP/s | ours/cuBLAS speed | max rel diff |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut mismatches = 0;
    for r in rows {
        let tf = |ms: f64| r.gflop / ms;
        let (cb, cbt, ratio) = match r.cublas_ms {
            Some(c) => (format!("{c:.3}"), format!("{:.1}", tf(c)), format!("{:.2}", c / r.ours_ms)),
            None => ("–".into(), "–".into(), "–".into()),
        };
        // Both accumulate in f32; only the order of the sums and the output rounding differ.
        let limit = match r.precision {
            Precision::F32 => 1e-4,
            Precision::F16 => 1e-2,
        };
        let diff = if r.diff.is_nan() {
            "–".into()
        } else if r.diff > limit {
            mismatches += 1;
            format!("**{:.1e} MISMATCH** (limit {limit:.0e})", r.diff)
        } else {
            format!("{:.1e}", r.diff)
        };
        println!(
            "| {} | {:?} | {:.2} | {:.3} | {} | {:.1} | {} | {} | {} |",
            r.name,
            r.precision,
            r.gflop,
            r.ours_ms,
            cb,
            tf(r.ours_ms),
            cbt,
            ratio,
            diff
        );
        out.push(serde_json::json!({
            "case": r.name, "precision": format!("{:?}", r.precision), "gflop": r.gflop,
            "edgepack_ms": r.ours_ms, "cublas_ms": r.cublas_ms,
            "ratio": r.cublas_ms.map(|c| c / r.ours_ms), "max_rel_diff": if r.diff.is_nan() { None } else { Some(r.diff) },
        }));
    }
    mismatches
}

/// Whole models on the GPU (batch 1 and 8), then concurrent sessions sharing one set of
/// weights; returns how many rows differ from ORT or from each other.
fn all_model_rows(set: &dyn KernelSet, zoo: &[String], profile: bool, out: &mut Vec<serde_json::Value>) -> usize {
    let mut mismatches = 0;
    println!(
        "\n| model | batch | storage | ms per run (median of 20) | page-locked ms | images/s (page-locked) | uploads | downloads | on the device | CUDA graph | vs ORT |\n|---|---:|---|---:|---:|---:|---:|---:|---|---|---:|"
    );
    let cases = model_cases(zoo);
    for case in &cases {
        for batch in [1, 8] {
            mismatches += model_rows(set, case, batch, profile, out);
        }
    }
    println!(
        "\n| model | storage | sessions (one set of weights, a lane each) | images/s at batch 1 | vs one session | outputs equal |\n|---|---|---:|---:|---:|---|"
    );
    for case in &cases {
        mismatches += concurrency_rows(set, case, out);
    }
    mismatches
}

/// The CUDA set against cuBLAS (and whole models against ONNX Runtime's outputs).
#[derive(clap::Parser)]
#[command(name = "cuda-bench")]
struct Args {
    /// Write the rows as JSON here too.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
    /// Fewer GEMM shapes.
    #[arg(long)]
    quick: bool,
    /// Only the f16 GEMM rows (for sweeping the tensor-core geometry).
    #[arg(long)]
    f16_gemm: bool,
    /// Also the real models end to end.
    #[arg(long)]
    models: bool,
    /// Only the real models.
    #[arg(long)]
    only_models: bool,
    /// Each model's device time by phase and operator at batch 1.
    #[arg(long)]
    profile: bool,
    /// Zoo models to run after the PP-OCR ones.
    #[arg(long, value_delimiter = ',')]
    zoo: Vec<String>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let models = args.only_models || args.models;
    let g: Arc<Gpu> = match gpu() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cuda-bench: skipped: {e}");
            std::process::exit(2);
        }
    };
    let set = kernel_set(KernelSetId::Cuda).expect("CUDA set");
    let blas = CudaBlas::new(g.stream().clone()).expect("cuBLAS");
    print_device(&g);
    let precisions: &[Precision] = match (args.only_models, args.f16_gemm) {
        (true, _) => &[],
        (false, true) => &[Precision::F16],
        (false, false) => &[Precision::F32, Precision::F16],
    };
    let rows = kernel_rows(&g, &blas, &*set, precisions, args.quick, args.f16_gemm);
    let mut out = Vec::new();
    let mut mismatches = report_kernel_rows(&rows, &mut out);
    if models {
        mismatches += all_model_rows(&*set, &args.zoo, args.profile, &mut out);
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({ "device": g.name(), "sm": g.sm(), "wgmma": g.has_wgmma(), "rows": out });
        std::fs::write(path, serde_json::to_string_pretty(&doc).expect("json")).expect("write report");
    }
    if mismatches > 0 {
        eprintln!("cuda-bench: {mismatches} row(s) differ from cuBLAS or ORT beyond the limit");
        std::process::exit(1);
    }
}
