//! The load test as a benchmark: the same run as `tests/tests/e2e/load.rs`, against
//! a release build, printing the README's table.
//!
//! ```text
//! cargo build --release -p sandboxd && cargo run --release -p sandboxd-tests --bin load-test
//! ```
//!
//! `LOAD_SECS` (60), `LOAD_CLIENTS` (256), `LOAD_SEED` (1) shape the run.

use sandboxd_tests::soak::{self, Plan};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plan = Plan::from_env();
    eprintln!("load test: {plan:?}");
    let report = soak::run(plan).await;
    println!("{}", report.table());
    for sample in &report.unexpected_samples {
        println!("unexpected: {sample}");
    }
    for wrong in &report.inconsistencies {
        println!("inconsistent: {wrong}");
    }
    if report.unexpected_errors > 0 || !report.inconsistencies.is_empty() {
        std::process::exit(1);
    }
}
