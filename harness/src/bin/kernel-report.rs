//! `kernel-report`: the parity-and-speed report of every kernel set, as one table.
//!
//! For each set this machine can run: parity against the float64 reference (the sweep of
//! [`harness::report::parity_sweep`]), the FMA peak of one core, and GEMM speed at one size on
//! one thread and on all threads, also as a fraction of the peak. Sets that cannot run here get
//! a row saying why. Exits non-zero if any parity case fails.
//!
//! ```text
//! kernel-report [--size N] [--parity-only] [--label NAME] [--cpu NAME] [--json PATH] [--junit PATH]
//! ```
//! `--parity-only` skips timing (under emulation timings mean nothing); `--cpu` names the CPU
//! where the OS cannot (qemu-user shows the host's /proc/cpuinfo); `--json`/`--junit` write the
//! parity report of this device run. Exit status: 0 when every parity case passes, 1 when one
//! fails, 2 on bad arguments or a report that cannot be written.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use harness::report::{parity_sweep, write_json, write_junit, Device, SetParity};
use kernels::{
    fma_peak_gflops, host_kernel_sets, BOperand, CacheSizes, Epilogue, KernelSet, MatMut, MatRef, Parallelism, Target,
};

/// Median GFLOP/s of an n³ GEMM with pre-packed B, the timed calls made on a thread of `pool`
/// as a plan's are: called from outside a pool, each call would also time the hand-over to
/// sleeping workers (on this 2-vCPU VM about 1 ms, the whole of a 512³ product on two threads).
fn speed(set: &dyn KernelSet, n: usize, par: Parallelism, pool: &rayon::ThreadPool) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7 + 3) % 17) as f32 * 0.0625 - 0.5).collect();
    let mut c = vec![0.0; n * n];
    let packed = set.pack_b(MatRef::row_major(&a, n, n).expect("B"));
    let mut times: Vec<f64> = pool.install(|| {
        (0..9)
            .map(|_| {
                let t = Instant::now();
                set.gemm(
                    MatRef::row_major(&a, n, n).expect("A"),
                    BOperand::Packed(&packed),
                    MatMut::row_major(&mut c, n, n).expect("C"),
                    &Epilogue::none(),
                    par,
                )
                .expect("gemm");
                t.elapsed().as_secs_f64()
            })
            .collect()
    });
    times.sort_by(f64::total_cmp);
    2.0 * (n as f64).powi(3) / times[times.len() / 2] / 1e9
}

/// FMA peak of one core in GFLOP/s (best of 5); `None` for sets without a meaningful ceiling.
fn peak(set: &dyn KernelSet) -> Option<f64> {
    (0..5).map(|_| fma_peak_gflops(set, 4 << 20)).reduce(|a, b| Some(a?.max(b?)))?
}

/// The parity-and-speed report of every kernel set this machine can run.
#[derive(clap::Parser)]
#[command(version)]
struct Args {
    /// GEMM size of the speed columns (n³).
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// Parity only, no timing (under emulation timings mean nothing).
    #[arg(long)]
    parity_only: bool,
    /// The device's name in the reports.
    #[arg(long, default_value = "host")]
    label: String,
    /// The CPU's name where the OS cannot tell it (qemu-user shows the host's /proc/cpuinfo).
    #[arg(long)]
    cpu: Option<String>,
    /// Write the parity report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the parity report as JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = rayon::current_num_threads();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let mut device = Device::this(&args.label);
    if let Some(cpu) = &args.cpu {
        device.cpu = cpu.clone(); // under qemu-user /proc/cpuinfo describes the x86 host
    }
    print_header(&args, &device, threads);
    let (sets, refused) = host_kernel_sets();
    let results: Vec<SetParity> = sets.iter().map(|set| report_set(&**set, &args, &pool, threads)).collect();
    let skipped: Vec<(String, String)> = refused
        .into_iter()
        .filter_map(|e| match e {
            kernels::KernelError::Unavailable { set, reason } => Some((set, reason)),
            _ => None,
        })
        .collect();
    for (set, reason) in &skipped {
        let dashes = if args.parity_only { 2 } else { 7 };
        println!("| {set} | – | – | – | skipped: {reason} |{}", " – |".repeat(dashes));
    }
    if let Err(e) = write_reports(&args, &device, &results, &skipped) {
        eprintln!("kernel-report: {e:#}");
        return ExitCode::from(2);
    }
    if results.iter().any(|r| r.failures() > 0) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The machine, the tuning, what parity checks, and the table's head.
fn print_header(args: &Args, device: &Device, threads: usize) {
    let caches = CacheSizes::host();
    println!("edgepack kernel report: {}", device.label);
    println!("cpu: {} | target: {} | {threads} threads", device.cpu, Target::host());
    println!("caches: L1d {} KiB, L2 {} KiB, L3 {} KiB", caches.l1d >> 10, caches.l2 >> 10, caches.l3 >> 10);
    match kernels::Tuning::host() {
        Ok(t) => println!("tuning: {t}"),
        Err(e) => println!("tuning: {e} (every set is refused)"),
    }
    let (activations, algorithms) = (kernels::Activation::all().len(), harness::suite::conv::algorithm_cases().len());
    println!(
        "parity: per set {} GEMM cases (4 shapes × {activations} activations × 2 epilogues) and {} convolution cases ({algorithms} algorithm cases × 2 epilogues) against float64; bound (K+2)·ε·Σ|a·b|",
        4 * activations * 2,
        algorithms * 2
    );
    println!();
    if args.parity_only {
        println!("| set | ISA | tile | KC/MC/NC | parity | max rel err | worst/bound |");
        println!("|---|---|---|---|---|---:|---:|");
    } else {
        let size = args.size;
        println!(
            "| set | ISA | tile | KC/MC/NC | parity | max rel err | worst/bound | peak GFLOP/s | {size}³ 1T GFLOP/s | % peak | {size}³ {threads}T GFLOP/s | % peak |"
        );
        println!("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    }
}

/// One set's parity sweep (and speed, unless parity only) as a table row; its first parity
/// failure on stderr.
fn report_set(set: &dyn KernelSet, args: &Args, pool: &rayon::ThreadPool, threads: usize) -> SetParity {
    let i = set.info();
    let p = parity_sweep(set);
    let verdict = match p.failures() {
        0 => format!("pass {}/{}", p.cases.len(), p.cases.len()),
        f => format!("FAIL {f}/{}", p.cases.len()),
    };
    let b = i.blocking;
    let common = format!(
        "| {} | {} | {}×{} | {}/{}/{} | {verdict} | {:.1e} | {:.3} |",
        i.name,
        i.isa,
        i.mr,
        i.nr,
        b.kc,
        b.mc,
        b.nc,
        p.max_rel_err(),
        p.worst_bound_ratio()
    );
    if args.parity_only {
        println!("{common}");
    } else {
        // Sets on portable vectors claim no peak (see `KernelInfo::peak_flops_per_iter`).
        let pk = peak(set);
        let pct = |g: f64, cores: f64| pk.map_or("n/a".to_owned(), |p| format!("{:.0}%", g / (p * cores) * 100.0));
        let one = speed(set, args.size, Parallelism::Sequential, pool);
        let all = speed(set, args.size, Parallelism::Threads, pool);
        let pk_text = pk.map_or("n/a".to_owned(), |p| format!("{p:.1}"));
        println!("{common} {pk_text} | {one:.1} | {} | {all:.1} | {} |", pct(one, 1.0), pct(all, threads as f64));
    }
    if let Some(c) = p.cases.iter().find(|c| c.failure.is_some()) {
        eprintln!("{}: first parity failure: {}", i.name, c.failure.as_deref().unwrap_or_default());
    }
    p
}

/// The JSON and JUnit reports `--json` and `--junit` ask for.
fn write_reports(
    args: &Args,
    device: &Device,
    results: &[SetParity],
    skipped: &[(String, String)],
) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        write_json(path, device, results, skipped).with_context(|| format!("writing {}", path.display()))?;
        println!("\nJSON report: {}", path.display());
    }
    if let Some(path) = &args.junit {
        write_junit(path, device, results, skipped).with_context(|| format!("writing {}", path.display()))?;
        println!("JUnit report: {}", path.display());
    }
    Ok(())
}
