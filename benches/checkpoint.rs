//! Activation checkpointing on the resmlp workload: peak bytes of one training step
//! (forward, MSE, backward, SGD; f32, one thread) without checkpointing, checkpointing every
//! block, and every ⌈√N⌉ blocks — for the standard sizes S, M, L and against depth
//! (16, 64, 256 blocks) for resmlp-M's block and for a deep narrow MLP — then the step
//! time of each plan relative to no checkpointing, from alternated rounds.
//!
//! `cargo bench --features bench --bench checkpoint` (`-- memory` for the memory tables
//! only, `-- time` for the times only). The measurements are `wengert::checkpoint_cost`'s,
//! which tutorial chapter 8 uses too.

use wengert::autograd::alloc_meter::{CountingAllocator, human};
use wengert::autograd::set_num_threads;
use wengert::checkpoint_cost::{DEPTHS, Memory, Plan, memory, narrow, resmlp_m, time_ratios};
use wengert::workloads::ResMlp;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Rounds of the alternated timing.
const ROUNDS: usize = 7;

fn main() {
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |part: &str| only.as_deref().is_none_or(|o| o == part);
    set_num_threads(1);
    if wants("memory") {
        println!(
            "Peak bytes of one training step (counting allocator, buffer cache off), f32, 1 thread"
        );
        memory_table(
            "resmlp S, M, L (WORKLOADS.md)",
            &[ResMlp::S, ResMlp::M, ResMlp::L],
        );
        memory_table(
            "resmlp-M's block (B = 64, D = 256) against depth",
            &DEPTHS.map(resmlp_m),
        );
        memory_table(
            "deep narrow MLP (B = 256, D = 32) against depth",
            &DEPTHS.map(narrow),
        );
    }
    if wants("time") {
        println!(
            "\nStep time relative to no checkpointing: median of {ROUNDS} alternated rounds \
             [smallest, largest round]; wall clock on a shared machine"
        );
        for size in DEPTHS.map(resmlp_m).into_iter().chain(DEPTHS.map(narrow)) {
            let [every, sqrt] = time_ratios(&size, ROUNDS);
            println!(
                "  {:<7} N = {:<3}  plain {:>9}/step   every block {:.2}× [{:.2}, {:.2}]   every {:>2} blocks {:.2}× [{:.2}, {:.2}]",
                size.name,
                size.blocks,
                format!("{:.2} ms", every.plain_seconds * 1e3),
                every.median,
                every.min,
                every.max,
                Plan::Sqrt.blocks_per_segment(size.blocks).unwrap_or(1),
                sqrt.median,
                sqrt.min,
                sqrt.max,
            );
        }
    }
}

/// One table: a row per size, a column per plan (peak, and its share of the plain peak),
/// and what the tape keeps and avoids.
fn memory_table(title: &str, sizes: &[ResMlp]) {
    println!("\n{title}");
    println!(
        "  {:<7} {:>4} {:>4} {:>4}  {:>22}  {:>22}  {:>22}   tape keeps (avoids), weights included",
        "size", "B", "D", "N", "no checkpointing", "every block", "every ⌈√N⌉ blocks"
    );
    for size in sizes {
        let rows: Vec<Memory> = Plan::ALL.iter().map(|&p| memory(size, p)).collect();
        let peak = |m: &Memory| m.peak_bytes.expect("the counting allocator is installed");
        let plain = peak(&rows[0]);
        let cells: Vec<String> = rows
            .iter()
            .map(|m| {
                let share = 100.0 * peak(m) as f64 / plain as f64;
                format!("{} B ({share:.0} %)", peak(m))
            })
            .collect();
        let tape: Vec<String> = rows
            .iter()
            .map(|m| match m.avoided_bytes {
                0 => human(m.tape_bytes),
                avoided => format!("{} ({})", human(m.tape_bytes), human(avoided)),
            })
            .collect();
        println!(
            "  {:<7} {:>4} {:>4} {:>4}  {:>22}  {:>22}  {:>22}   {}",
            size.name,
            size.batch,
            size.width,
            size.blocks,
            cells[0],
            cells[1],
            cells[2],
            tape.join(" / ")
        );
    }
}
