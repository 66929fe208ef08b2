//! Authentication and isolation between users, through the real binary.

use serde_json::{Value, json};

use sandboxd_tests::client::Api;
use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::host::Host;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

const ALICE: &str = "alice-key-0123456789abcdef";
const BOB: &str = "bob-key-0123456789abcdef";
const ADMIN: &str = "admin-key-0123456789abcdef";

fn keys_config() -> String {
    format!(
        "[auth]\nmode = \"api-keys\"\n\
         [[auth.keys]]\nkey = \"{ALICE}\"\nuser_id = \"alice\"\n\
         [[auth.keys]]\nkey = \"{BOB}\"\nuser_id = \"bob\"\n\
         [[auth.keys]]\nkey = \"{ADMIN}\"\nadmin = true\n"
    )
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn users_see_and_touch_only_their_own_sandboxes(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.spawn(Options::for_runtime(&rt).config(&keys_config()));
    let (alice, bob, admin) = (
        sd.api().with_key(ALICE),
        sd.api().with_key(BOB),
        sd.api().with_key(ADMIN),
    );

    let a = alice.start().await;
    let a_id = a["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(a["created_by_user_id"], "alice");
    let b = bob.start().await;
    let b_id = b["id"].as_str().unwrap_or_default().to_owned();

    // Bob cannot tell Alice's sandbox from one that does not exist.
    let missing = bob.get("/api/v1/sandboxes/does-not-exist").await;
    let hers = bob.get(&format!("/api/v1/sandboxes/{a_id}")).await;
    assert_eq!(hers.status, 404);
    assert_eq!(
        hers.detail().replace(&a_id, "X"),
        missing.detail().replace("does-not-exist", "X")
    );
    rt.clear_requests();
    for path in [
        format!("/api/v1/sandboxes/{a_id}/pause"),
        format!("/api/v1/sandboxes/{a_id}/resume"),
    ] {
        assert_eq!(bob.post(&path).await.status, 404, "{path}");
    }
    assert_eq!(
        bob.delete(&format!("/api/v1/sandboxes/{a_id}"))
            .await
            .status,
        404
    );
    assert!(
        rt.requests().iter().all(|r| r.method == "GET"),
        "bob's calls changed something at the runtime"
    );
    assert_eq!(
        rt.runtime(&a_id).map(|r| r["status"].clone()),
        Some(json!("running"))
    );

    assert_eq!(
        bob.get(&format!("/api/v1/sandboxes?id={a_id}&id={b_id}"))
            .await
            .ok()[0],
        Value::Null
    );
    assert_eq!(
        ids(&bob.get("/api/v1/sandboxes/search").await.ok()),
        vec![b_id.clone()]
    );
    assert_eq!(
        ids(&alice.get("/api/v1/sandboxes/search").await.ok()),
        vec![a_id.clone()]
    );
    // Bob's page cursor resolves inside Bob's own listing only.
    let mut all = ids(&admin.get("/api/v1/sandboxes/search").await.ok());
    all.sort();
    let mut both = vec![a_id.clone(), b_id.clone()];
    both.sort();
    assert_eq!(all, both, "an admin key sees everyone's");

    // Alice can act on hers.
    assert_eq!(
        alice
            .post(&format!("/api/v1/sandboxes/{a_id}/pause"))
            .await
            .ok(),
        json!({"success": true})
    );
    assert_eq!(
        admin
            .delete(&format!("/api/v1/sandboxes/{b_id}"))
            .await
            .ok(),
        json!({"success": true})
    );
}

async fn requests_without_a_valid_key_are_refused(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.spawn(Options::for_runtime(&rt).config(&keys_config()));
    let anonymous = sd.api();
    for reply in [
        anonymous.get("/api/v1/sandboxes/search").await,
        anonymous.post("/api/v1/sandboxes").await,
        anonymous
            .with_key("wrong-key-0123456789abcdef")
            .get("/api/v1/sandboxes/search")
            .await,
        anonymous
            .with_header("authorization", ALICE)
            .get("/api/v1/sandboxes/search")
            .await,
        anonymous.get("/api/v1/sandboxes/not-even-a-route").await,
    ] {
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(!reply.detail().is_empty());
    }
    assert_eq!(rt.count("POST", "/start"), 0);
}

/// Rust host only: the Node.js host supports auth modes none and api-keys, not trusted-header.
#[tokio::test]
async fn a_trusted_gateway_names_the_user() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let sd =
        Sandboxd::start_with(Options::for_runtime(&rt).env("SANDBOXD_AUTH_MODE", "trusted-header"));
    let carol = sd.api().with_header("x-user-id", "carol");
    let dave = sd.api().with_header("x-user-id", "dave");
    let sb = carol.start().await;
    assert_eq!(sb["created_by_user_id"], "carol");
    let id = sb["id"].as_str().unwrap_or_default();
    assert_eq!(
        dave.get(&format!("/api/v1/sandboxes/{id}")).await.status,
        404
    );
    assert_eq!(
        carol.get(&format!("/api/v1/sandboxes/{id}")).await.status,
        200
    );
    assert_eq!(
        Api::new(sd.url())
            .get("/api/v1/sandboxes/search")
            .await
            .status,
        401
    );
}

on_both_hosts!(
    users_see_and_touch_only_their_own_sandboxes,
    requests_without_a_valid_key_are_refused,
);
