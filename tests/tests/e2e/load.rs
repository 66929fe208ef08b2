//! The load test (see `sandboxd_tests::soak`): 256 clients, each its own user,
//! mixing every operation for 60 s against a runtime API that fails 1% of its
//! requests. `LOAD_SECS` and `LOAD_CLIENTS` shorten or widen a run; the
//! `load-test` binary runs the same thing against a release build and prints
//! the README's table.

use sandboxd_tests::soak::{self, Plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_with_faults_nothing_unexpected_fails_and_nothing_is_lost() {
    // 256 clients saturate both cores for a minute: alone, so the other tests'
    // timeouts do not fail under it and its numbers measure sandboxd only.
    let _turn = crate::serial::alone().await;
    let plan = Plan::from_env();
    eprintln!("load test: {plan:?}");
    let report = soak::run(plan).await;
    eprintln!("{}", report.table());

    assert!(report.requests > 1000, "too few requests to say anything");
    assert!(
        report.faults_injected > 0 && report.expected_errors > 0,
        "the runtime's faults never showed: the test does not test them"
    );
    assert_eq!(
        report.unexpected_errors, 0,
        "unexpected errors, e.g. {:#?}",
        report.unexpected_samples
    );
    assert!(
        report.inconsistencies.is_empty(),
        "the store disagrees with the runtime or the clients: {:#?}",
        report.inconsistencies
    );
    // Memory levels off: the last quarter's peak is within 10% (plus 16 MiB of
    // allocator slack) of the third quarter's.
    let (third, last) = (
        report.rss_peak_between(0.5, 0.75),
        report.rss_peak_between(0.75, 1.0),
    );
    assert!(
        last <= third + third / 10 + 16 * 1024,
        "resident memory still growing: {third} KiB in the 3rd quarter, {last} KiB in the last"
    );
}
