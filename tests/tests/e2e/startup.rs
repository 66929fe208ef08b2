//! Start-up: configuration errors stop it with a clear message; secrets never
//! reach the logs.

use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

fn refusal(options: Options) -> String {
    match Sandboxd::try_start(options) {
        Ok(_) => panic!("sandboxd started with an invalid configuration"),
        Err(f) => {
            assert_eq!(f.exit_code, Some(2), "{}", f.stderr);
            f.stderr
        }
    }
}

#[test]
fn invalid_configuration_names_the_key_and_the_allowed_values() {
    let _turn = crate::serial::shared_blocking();
    let rt = FakeRuntime::start();
    let e = refusal(Options::for_runtime(&rt).env("SANDBOXD_RESOURCE_FACTOR", "3"));
    assert!(
        e.contains("SANDBOXD_RESOURCE_FACTOR") && e.contains("1, 2, 4 or 8"),
        "{e}"
    );
    let e = refusal(Options::for_runtime(&rt).env("SANDBOXD_RUNTIME_CLASS", "kata"));
    assert!(e.contains("gvisor or sysbox"), "{e}");
    let e = refusal(Options::for_runtime(&rt).env("SANDBOXD_WEB_URL", "not a url"));
    assert!(e.contains("web_url"), "{e}");
    let e = refusal(Options::default().env("SANDBOXD_RUNTIME_API_URL", "https://runtime.example"));
    assert!(
        e.contains("SANDBOXD_RUNTIME_API_KEY") && e.contains("required"),
        "{e}"
    );
    let e = refusal(Options::for_runtime(&rt).env("SANDBOXD_LISTEN", "0.0.0.0:0"));
    assert!(e.contains("without authentication"), "{e}");
    let e = refusal(Options::for_runtime(&rt).config("[runtime]\nresource_factr = 2\n"));
    assert!(e.contains("resource_factr"), "{e}");
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    // Everything at trace level, but the compiler's own (huge) traces.
    let filter = "trace,cranelift_codegen=warn,cranelift_frontend=warn,regalloc2=warn,wasmtime_internal_cranelift=warn,wasmtime_environ=warn,wasmtime=warn";
    let sd = Sandboxd::start_with(Options::for_runtime(&rt).env("SANDBOXD_LOG", filter));
    let api = sd.api();
    let sb = api.start().await;
    let id = sb["id"].as_str().unwrap_or_default().to_owned();
    api.get("/api/v1/sandboxes/search").await.ok();
    api.post(&format!("/api/v1/sandboxes/{id}/pause"))
        .await
        .ok();
    api.post(&format!("/api/v1/sandboxes/{id}/resume"))
        .await
        .ok();
    let resumed_key = api.sandbox(&id).await["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    api.delete(&format!("/api/v1/sandboxes/{id}")).await.ok();
    let logs = sd.logs();
    assert!(
        logs.contains("sandbox started"),
        "the logs are being captured"
    );
    assert!(
        !logs.contains(rt.api_key()),
        "the runtime API key was logged"
    );
    let first_key = sb["session_api_key"].as_str().unwrap_or_default();
    assert!(
        !first_key.is_empty() && !logs.contains(first_key),
        "a session key was logged"
    );
    assert!(!logs.contains(&resumed_key), "a session key was logged");
}

#[test]
fn the_database_holds_no_session_key() {
    let _turn = crate::serial::shared_blocking();
    let rt = FakeRuntime::start();
    let mut sd = Sandboxd::start(&rt);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let sb = runtime.block_on(sd.api().start());
    let key = sb["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!key.is_empty());
    sd.stop();
    let db = std::fs::read(sd.data_dir().join("sandboxd.redb")).unwrap_or_default();
    assert!(!db.is_empty());
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "the session key is stored in clear"
    );
}
