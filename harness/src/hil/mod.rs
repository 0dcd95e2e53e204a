//! Hardware in the loop: the kernel parity suite, the model parity check, the agent and a
//! Greengrass-style deployment of the published components run on real boards over SSH
//! (`edgepack-hil`), each board checked against the target it claims to be, boards in parallel,
//! one board's failure never stopping the others.

mod board;
mod greengrass;
mod host;
mod inventory;
mod report;
mod ssh;

pub use board::{arch_name, run_board, BoardReport, Bundle, StepReport, StepStatus};
pub use greengrass::{published, Component, DeployError, Deployment};
pub use host::host_figure;
pub use inventory::{parse_inventory, read_inventory, Board, InventoryError};
pub use report::{table, to_json, write_reports};
pub use ssh::{classify, quote, Failure, Output, Ssh};

/// Runs every board in its own thread; the reports come back in inventory order, each with
/// the host's figure for its bundle's model ([`host_figure`], measured first, one bundle at a
/// time, or `{"error": …}`).
pub fn run_boards(boards: &[Board], bundles: &std::path::Path, out: &std::path::Path) -> Vec<BoardReport> {
    let mut host = std::collections::HashMap::new();
    for b in boards {
        let dir = Bundle::for_target(bundles, &b.target).dir;
        if let std::collections::hash_map::Entry::Vacant(v) = host.entry(dir) {
            let figure = host_figure(&v.key().join("component"))
                .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
            v.insert(figure);
        }
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = boards
            .iter()
            .map(|b| {
                let bundle = Bundle::for_target(bundles, &b.target);
                let host = host[&bundle.dir].clone();
                s.spawn(move || BoardReport { host_figure: host, ..run_board(b, &bundle, out) })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a board's thread panicked")).collect()
    })
}
