//! The tracked figures: kernel products against tract or our scalar set, whole zoo models
//! against ONNX Runtime, and the same work as a worker's jobs (ours alone) for the
//! commit-against-commit gate.

use std::path::{Path, PathBuf};
use std::time::Instant;

use edgepack_benches::gate::Job;
use edgepack_benches::ort_peer::OrtPeer;
use edgepack_benches::peers::{ours, Problem, Tract};
use edgepack_benches::tracking::{Figure, Workload};
use edgepack_benches::{gemm_flops, CONV1X1_SHAPES};
use kernels::{KernelSet, MatRef, Parallelism};

use crate::fail;

/// The tracked products: (label, m, n, k).
fn tracked_shapes() -> Vec<(String, usize, usize, usize)> {
    let mut v = vec![("gemm 256³".to_owned(), 256, 256, 256), ("gemm 1024³".to_owned(), 1024, 1024, 1024)];
    for label in ["160x160_16-64", "48x192_128-256"] {
        let s = CONV1X1_SHAPES.iter().find(|s| s.label == label).expect("listed conv shape");
        v.push((format!("conv1x1 {}", s.label), s.m, s.n, s.k));
    }
    v
}

/// `set`'s single-threaded product of an `m × k` by a pre-packed `k × n` matrix.
fn gemm_workload(set: &dyn KernelSet, (m, n, k): (usize, usize, usize)) -> Workload<'_> {
    let mut p = Problem::new(m, n, k);
    let packed = set.pack_b(MatRef::row_major(&p.b, k, n).expect("B"));
    Workload::Call(Box::new(move || ours(set, &mut p, &packed, Parallelism::Sequential)))
}

fn ours_vs_tract<'a>(set: &'a dyn KernelSet, label: &str, (m, n, k): (usize, usize, usize)) -> Figure<'a> {
    let mut tract = Tract::new(&Problem::new(m, n, k));
    Figure {
        name: format!("{label} {}/tract", set.info().name),
        flops: gemm_flops(m, n, k),
        ours: gemm_workload(set, (m, n, k)),
        reference: Workload::Call(Box::new(move || tract.run(m, n))),
    }
}

fn ours_vs_set<'a>(set: &'a dyn KernelSet, reference: &'a dyn KernelSet, label: &str, n: usize) -> Figure<'a> {
    Figure {
        name: format!("{label} {}/{}", set.info().name, reference.info().name),
        flops: gemm_flops(n, n, n),
        ours: gemm_workload(set, (n, n, n)),
        reference: gemm_workload(reference, (n, n, n)),
    }
}

/// The kernel figures: the tracked products on `best` against tract, `best` against the scalar
/// set, and the scalar set against tract.
pub fn kernel_figures<'a>(best: &'a dyn KernelSet, scalar: &'a dyn KernelSet) -> Vec<Figure<'a>> {
    let mut figures: Vec<Figure<'_>> =
        tracked_shapes().into_iter().map(|(label, m, n, k)| ours_vs_tract(best, &label, (m, n, k))).collect();
    if best.info().id != scalar.info().id {
        figures.push(ours_vs_set(best, scalar, "gemm 512³", 512));
    }
    figures.push(ours_vs_tract(scalar, "gemm 256³", (256, 256, 256)));
    figures
}

/// Zoo models tracked whole, with the thread counts they are timed at: a compute-bound CNN
/// (and its two-thread scaling), depthwise-separable blocks, and SiLU/squeeze-excitation
/// epilogues with their vectorized transcendentals.
const TRACKED_MODELS: &[(&str, &[usize])] = &[("resnet18", &[1, 2]), ("mobilenet_v2", &[1]), ("efficientnet_b0", &[1])];

/// A tracked zoo model, planned for `set`, with its input and ONNX Runtime's outputs.
pub struct TrackedModel {
    name: String,
    threads: &'static [usize],
    path: PathBuf,
    input_file: PathBuf,
    plan: model::plan::Plan,
    input: model::Tensor,
    expected: model::Tensor,
}

/// The tracked zoo models, planned for `set` (the zoo and ORT's outputs must have been fetched).
pub fn tracked_models(set: &dyn KernelSet) -> Result<Vec<TrackedModel>, Box<dyn std::error::Error>> {
    let zoo = harness::zoo::all()?;
    let mut out = Vec::new();
    for &(name, threads) in TRACKED_MODELS {
        let m = zoo.iter().find(|m| m.name == name).ok_or_else(|| format!("the zoo has no model `{name}`"))?;
        let prepared = model::prepare(&std::fs::read(&m.path)?, std::slice::from_ref(&m.shape))?;
        let plan = model::plan::build(&prepared.optimized, set)?;
        let ort_dir = m.ort_dir();
        let (input, outputs) = harness::models::read_case(&ort_dir)?;
        let expected = outputs.into_iter().next().ok_or_else(|| format!("{name}: no ONNX Runtime output"))?;
        out.push(TrackedModel {
            name: name.to_owned(),
            threads,
            path: m.path.clone(),
            input_file: ort_dir.join("input_0.npy"),
            plan,
            input,
            expected,
        });
    }
    Ok(out)
}

fn model_failed(name: &str, threads: usize, e: &dyn std::fmt::Display) -> ! {
    fail(&format!("model {name} at {threads} thread(s): {e}"))
}

/// A session of `tracked` at `threads` threads, whose first output has been checked against
/// ONNX Runtime's.
fn checked_session(tracked: &TrackedModel, threads: usize) -> model::plan::Session<'_> {
    let mut session = tracked.plan.session(threads).unwrap_or_else(|e| model_failed(&tracked.name, threads, &e));
    let out =
        session.run(std::slice::from_ref(&tracked.input)).unwrap_or_else(|e| model_failed(&tracked.name, threads, &e));
    let (got, want) = (out[0].floats().unwrap_or_default(), tracked.expected.floats().unwrap_or_default());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
    if got.len() != want.len() || err.is_nan() || err > 1e-3 {
        let e =
            format!("differs from ONNX Runtime (max relative error {err:.1e}, {} vs {} values)", got.len(), want.len());
        model_failed(&tracked.name, threads, &e);
    }
    session
}

/// Our side of a model figure: each timed block runs the model once untimed first, as it runs
/// in a camera loop, warm, not straight after the other side has flushed the caches.
fn model_workload(tracked: &TrackedModel, threads: usize) -> Workload<'_> {
    let mut session = checked_session(tracked, threads);
    let input = &tracked.input;
    Workload::Timed(Box::new(move |reps| {
        let mut run = || {
            session.run(std::slice::from_ref(input)).unwrap_or_else(|e| fail(&format!("model run: {e}")));
        };
        run();
        let start = Instant::now();
        (0..reps).for_each(|_| run());
        start.elapsed().as_secs_f64()
    }))
}

/// `model NAME NT SET`: a model figure's name without its reference.
fn model_label(tracked: &TrackedModel, threads: usize) -> String {
    format!("model {} {threads}T {}", tracked.name, tracked.plan.kernel_name)
}

/// `model NAME NT SET/ort-VERSION`: the model on our best set against ONNX Runtime at the same
/// thread count, our output checked against ORT's before anything is timed.
fn ours_vs_ort<'a>(tracked: &'a TrackedModel, threads: usize, python: &Path) -> Figure<'a> {
    let ours = model_workload(tracked, threads);
    let mut peer = OrtPeer::start(python, &tracked.path, &tracked.input_file, threads)
        .unwrap_or_else(|e| model_failed(&tracked.name, threads, &e));
    Figure {
        name: format!("{}/ort-{}", model_label(tracked, threads), harness::models::ORT_VERSION),
        flops: tracked.plan.flops,
        ours,
        reference: Workload::Timed(Box::new(move |reps| peer.run(reps).unwrap_or_else(|e| fail(&e.to_string())))),
    }
}

/// The model figures: every tracked model at each of its thread counts against ONNX Runtime.
pub fn model_figures<'a>(models: &'a [TrackedModel], python: &Path) -> Vec<Figure<'a>> {
    models.iter().flat_map(|m| m.threads.iter().map(move |&t| ours_vs_ort(m, t, python))).collect()
}

/// A worker's jobs: our side of every kernel and model figure, named without the reference
/// (`gemm 256³ avx512`, `model resnet18 1T avx512`).
pub fn worker_jobs<'a>(best: &'a dyn KernelSet, scalar: &'a dyn KernelSet, models: &'a [TrackedModel]) -> Vec<Job<'a>> {
    let mut jobs: Vec<Job<'_>> = tracked_shapes()
        .into_iter()
        .map(|(label, m, n, k)| Job {
            name: format!("{label} {}", best.info().name),
            flops: gemm_flops(m, n, k),
            work: gemm_workload(best, (m, n, k)),
        })
        .collect();
    if best.info().id != scalar.info().id {
        jobs.push(Job {
            name: format!("gemm 256³ {}", scalar.info().name),
            flops: gemm_flops(256, 256, 256),
            work: gemm_workload(scalar, (256, 256, 256)),
        });
    }
    for m in models {
        for &t in m.threads {
            jobs.push(Job { name: model_label(m, t), flops: m.plan.flops, work: model_workload(m, t) });
        }
    }
    jobs
}
