//! `edgepack-hil`: the kernel parity suite, the model parity check, the agent and a Greengrass
//! deployment on real boards over SSH, one table across boards (with the host's figure for
//! each bundle's model).
//!
//! ```text
//! edgepack-hil --inventory boards.toml --bundles target/device [--out target/hil] [--board NAME]...
//! ```
//! Each board gets the bundle of its architecture (`<bundles>/x86_64`, `<bundles>/aarch64`:
//! `kernel-report`, `edgepack-agent`, `component/`, `greengrass/`; docs/hil.md says how to
//! build them). Reports go to `<out>/<board>/` (what each step left on the board),
//! `<out>/hil.json` and `<out>/hil.xml` (JUnit). Exits 0 when every board passed, 1 when one
//! did not, 2 on a bad inventory or arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use harness::hil::{read_inventory, run_boards, table, write_reports};

/// Runs the parity suites, the model parity check and the agent on boards over SSH.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The inventory (TOML; see harness/src/hil/inventory.rs or docs/hil.md).
    #[arg(long)]
    inventory: PathBuf,
    /// Folder with one bundle per architecture (`x86_64/`, `aarch64/`).
    #[arg(long)]
    bundles: PathBuf,
    /// Where the reports go.
    #[arg(long, default_value = "target/hil")]
    out: PathBuf,
    /// Only these boards (repeatable).
    #[arg(long = "board", value_name = "NAME")]
    boards: Vec<String>,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("edgepack-hil: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let a = Args::parse();
    let mut boards = read_inventory(&a.inventory)?;
    if !a.boards.is_empty() {
        if let Some(missing) = a.boards.iter().find(|n| !boards.iter().any(|b| &&b.name == n)) {
            anyhow::bail!("no board `{missing}` in {}", a.inventory.display());
        }
        boards.retain(|b| a.boards.contains(&b.name));
    }
    std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
    eprintln!("edgepack-hil: {} board(s), reports in {}", boards.len(), a.out.display());
    let reports = run_boards(&boards, &a.bundles, &a.out);
    let (json, junit) = (a.out.join("hil.json"), a.out.join("hil.xml"));
    write_reports(&reports, &json, &junit).with_context(|| format!("writing {}", json.display()))?;
    print!("{}", table(&reports));
    println!(
        "reports: {} and {} (JUnit); each board's in {}/<board>/",
        json.display(),
        junit.display(),
        a.out.display()
    );
    Ok(reports.iter().all(|r| r.status() == "passed"))
}
