//! The API against its own OpenAPI document, under a property-based fuzzer:
//! schemathesis generates requests for every documented operation (valid,
//! boundary and invalid ones, and chains of them), sends them to a live
//! sandboxd on a healthy fake runtime, and checks every answer: no 5xx, no
//! status, content type, header or body the document does not describe.
//!
//! The seed is printed; `API_FUZZ_SEED=<n>` repeats a run, and
//! `API_FUZZ_EXAMPLES=<n>` makes it longer.

use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::sandboxd::Sandboxd;
use sandboxd_tests::schemathesis::Run;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn every_answer_is_what_the_openapi_document_says() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let sd = Sandboxd::start(&rt);
    // A sandbox the fuzzer can find, so reads and the webhooks (with its
    // session key) reach the code behind them, not only the 404s and 401s.
    let sandbox = sd.api().start().await;
    let key = sandbox["session_api_key"].as_str().unwrap_or_default();
    let seed = env_number("API_FUZZ_SEED", 20_261_203);
    println!("API_FUZZ_SEED={seed}");
    let run = Run {
        url: sd.url().to_owned(),
        headers: vec![format!("X-Session-API-Key: {key}")],
        max_examples: u32::try_from(env_number("API_FUZZ_EXAMPLES", 25)).unwrap_or(25),
        seed,
        // A stream never ends by itself; its route is covered by the stream tests.
        exclude_path_regex: Some("/events/stream$".into()),
    };
    let output = tokio::task::spawn_blocking(move || run.run())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found answers that break the document (seed {seed}):\n{report}\n{errors}\n\
         sandboxd's log:\n{}",
        sd.logs()
    );
    assert!(report.contains("passed"), "no test ran:\n{report}");
}
