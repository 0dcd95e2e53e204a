//! Turns the criterion results of `cargo bench -p edgepack-benches` (under
//! `target/criterion`) into the markdown tables of docs/performance.md: per group, one row per
//! shape, GFLOP/s (median) of every contender, our best set as a fraction of its FMA peak, and
//! our best set against the fastest peer.
//!
//! `cargo run -p edgepack-benches --bin perf-table [-- CRITERION_DIR]`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One benchmark's identity and median throughput.
struct Result {
    group: String,
    function: String,
    value: String,
    gflops: f64,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn collect(dir: &Path, out: &mut Vec<Result>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "new") {
                if let Some(r) = read_result(&path) {
                    out.push(r);
                }
            } else {
                collect(&path, out);
            }
        }
    }
}

fn read_result(new_dir: &Path) -> Option<Result> {
    let bench = read_json(&new_dir.join("benchmark.json"))?;
    let est = read_json(&new_dir.join("estimates.json"))?;
    let elements = bench["throughput"]["Elements"].as_f64()?;
    let median_ns = est["median"]["point_estimate"].as_f64()?;
    Some(Result {
        group: bench["group_id"].as_str()?.to_owned(),
        function: bench["function_id"].as_str().unwrap_or("").to_owned(),
        value: bench["value_str"].as_str().unwrap_or("").to_owned(),
        gflops: elements / median_ns,
    })
}

/// Markdown tables from criterion's results.
#[derive(clap::Parser)]
#[command(name = "perf-table")]
struct Args {
    /// Criterion's output folder.
    #[arg(default_value = "target/criterion")]
    dir: PathBuf,
}

fn main() {
    let dir = <Args as clap::Parser>::parse().dir;
    let mut results = Vec::new();
    collect(&dir, &mut results);
    if results.is_empty() {
        eprintln!("no criterion results under {}: run `cargo bench -p edgepack-benches` first", dir.display());
        std::process::exit(1);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // peak_fma: function id is empty, the set's name is the "value".
    let peaks: BTreeMap<String, f64> = results
        .iter()
        .filter(|r| r.group == "peak_fma")
        .map(|r| (if r.function.is_empty() { r.value.clone() } else { r.function.clone() }, r.gflops))
        .collect();
    println!("Machine: {} ({threads} threads), {}", kernels::host_cpu_name(), today());
    println!();
    println!("| FMA peak, one core | GFLOP/s |");
    println!("|---|---:|");
    for (set, g) in &peaks {
        println!("| {set} | {g:.1} |");
    }
    let mut groups: BTreeMap<&str, BTreeMap<&str, BTreeMap<&str, f64>>> = BTreeMap::new();
    for r in results.iter().filter(|r| r.group != "peak_fma") {
        groups.entry(&r.group).or_default().entry(&r.value).or_default().insert(&r.function, r.gflops);
    }
    for (group, rows) in &groups {
        let scale = if group.ends_with("_mt") { threads as f64 } else { 1.0 };
        let mut columns: Vec<&str> = rows.values().flat_map(|r| r.keys().copied()).collect();
        columns.sort_unstable();
        columns.dedup();
        println!();
        println!("### {group} (GFLOP/s, median)");
        println!();
        println!("| shape | {} | best ours % of peak | best ours / best peer |", columns.join(" | "));
        println!("|---|{}---:|---:|", "---:|".repeat(columns.len()));
        let mut shapes: Vec<&&str> = rows.keys().collect();
        shapes.sort_by_key(|s| (s.parse::<usize>().unwrap_or(usize::MAX), s.to_string()));
        for shape in shapes {
            let row = &rows[*shape];
            let cells: Vec<String> =
                columns.iter().map(|c| row.get(c).map_or("–".into(), |g| format!("{g:.1}"))).collect();
            let ours = row.iter().filter(|(f, _)| f.starts_with("edgepack-")).max_by(|a, b| a.1.total_cmp(b.1));
            let peer = row.iter().filter(|(f, _)| !f.starts_with("edgepack-")).map(|(_, g)| *g).fold(0.0, f64::max);
            let (pct, ratio) = match ours {
                Some((f, g)) => {
                    let peak = peaks.get(f.trim_start_matches("edgepack-")).map(|p| p * scale);
                    (peak.map_or("–".into(), |p| format!("{:.0}%", g / p * 100.0)), format!("{:.2}×", g / peer))
                }
                None => ("–".into(), "–".into()),
            };
            println!("| {shape} | {} | {pct} | {ratio} |", cells.join(" | "));
        }
    }
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "date unknown".into(), |s| s.trim().to_owned())
}
