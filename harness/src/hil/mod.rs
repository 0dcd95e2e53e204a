//! Hardware in the loop: the kernel parity suite, the model parity check and the agent run on
//! real boards over SSH (`edgepack-hil`), each board checked against the target it claims to
//! be, boards in parallel, one board's failure never stopping the others.

mod board;
mod inventory;
mod report;
mod ssh;

pub use board::{arch_name, run_board, BoardReport, Bundle, StepReport, StepStatus};
pub use inventory::{parse_inventory, read_inventory, Board, InventoryError};
pub use report::{table, to_json, write_reports};
pub use ssh::{classify, quote, Failure, Output, Ssh};

/// Runs every board in its own thread; the reports come back in inventory order.
pub fn run_boards(boards: &[Board], bundles: &std::path::Path, out: &std::path::Path) -> Vec<BoardReport> {
    std::thread::scope(|s| {
        let handles: Vec<_> = boards
            .iter()
            .map(|b| s.spawn(move || run_board(b, &Bundle::for_target(bundles, &b.target), out)))
            .collect();
        handles.into_iter().map(|h| h.join().expect("a board's thread panicked")).collect()
    })
}
