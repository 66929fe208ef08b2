//! Many agents on one port, the handle's control side, recording, shutdown.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use serde_json::{Value, json};

use super::super::{FakeAgentServer, FakeAgentServerOptions};
use super::{Client, ids_of};

#[tokio::test]
async fn hundreds_of_agents_share_one_port_with_their_own_keys_and_data() {
    const AGENTS: usize = 300;
    let fake = Arc::new(FakeAgentServer::start_with(FakeAgentServerOptions {
        worker_threads: 2,
        record_requests: false,
        ..Default::default()
    }));
    let mut expected = Vec::new();
    for n in 0..AGENTS {
        let prefix = format!("sb-{n}");
        let base = fake.add_agent(&prefix, &format!("key-{n}"));
        assert_eq!(base, format!("{}/{prefix}", fake.url()));
        let conversation = fake.add_conversation(&prefix, json!({"title": prefix}));
        let events: Vec<Value> = (0..20).map(|i| json!({"n": n, "i": i})).collect();
        let ids = fake.add_events(&prefix, &conversation, events);
        expected.push((prefix, conversation, ids));
    }
    assert_eq!(fake.agents().len(), AGENTS);

    // Every agent synced at once, as sandboxd's sync cycle would.
    let mut tasks = Vec::new();
    for (prefix, conversation, ids) in expected {
        let fake = Arc::clone(&fake);
        tasks.push(tokio::spawn(async move {
            let client = Client::new(&fake, &prefix);
            let (status, page) = client.get("/api/conversations/search").await;
            assert_eq!(status, 200, "{prefix}: {page}");
            assert_eq!(ids_of(&page), std::slice::from_ref(&conversation));
            assert_eq!(page["items"][0]["title"], prefix);
            let path = format!("/api/conversations/{conversation}/events/search");
            assert_eq!(client.all_pages(&path, &[], 8).await, ids, "{prefix}");
            // Another agent's conversation is not visible here.
            let other = if prefix == "sb-0" { "sb-1" } else { "sb-0" };
            let stranger = Client::with_key(&fake, other, client.key.as_deref());
            assert_eq!(stranger.get("/api/conversations/search").await.0, 401);
        }));
    }
    for task in tasks {
        task.await.expect("an agent's sync");
    }
    assert!(fake.requests().is_empty(), "recording was off");
    assert_eq!(fake.total_requests(), (AGENTS * 5) as u64);
}

#[tokio::test]
async fn the_root_agent_nested_prefixes_and_removed_agents() {
    let fake = FakeAgentServer::start();
    assert_eq!(fake.add_agent("/", "root-key"), fake.url());
    assert_eq!(
        fake.add_agent("/rt/sb-1/", "nested-key"),
        format!("{}/rt/sb-1", fake.url())
    );
    fake.add_agent("sb-2", "key-2");
    let root_conversation = fake.add_conversation("", Value::Null);
    let nested_conversation = fake.add_conversation("rt/sb-1", Value::Null);

    let root = Client::new(&fake, "");
    let nested = Client::new(&fake, "rt/sb-1");
    let search = "/api/conversations/search";
    assert_eq!(
        ids_of(&root.get(search).await.1),
        std::slice::from_ref(&root_conversation)
    );
    assert_eq!(ids_of(&nested.get(search).await.1), [nested_conversation]);
    // `/rt/…` without a registered prefix falls through to the root agent: 404 there.
    let stray = Client::with_key(&fake, "rt", Some("root-key"));
    assert_eq!(stray.get(search).await.0, 404);
    assert_eq!(fake.agents(), ["", "rt/sb-1", "sb-2"]);

    // A removed agent's routes answer the root's 404; without a root, 404 too.
    let two = Client::new(&fake, "sb-2");
    assert_eq!(two.get("/alive").await.0, 200);
    assert!(fake.remove_agent("/sb-2"));
    assert!(!fake.remove_agent("sb-2"));
    assert_eq!(two.get("/alive").await.0, 404);
    assert!(fake.remove_agent(""));
    assert_eq!(root.get("/alive").await.0, 404);
    assert_eq!(fake.session_key("sb-2"), None);
    assert!(fake.conversations("").is_empty());
    assert_eq!(fake.conversation("", &root_conversation), None);
    assert!(fake.events("", &root_conversation).is_empty());

    // The prefix can be registered again, fresh.
    fake.add_agent("sb-2", "key-2b");
    let two = Client::new(&fake, "sb-2");
    assert_eq!(
        two.get(search).await,
        (200, json!({"items": [], "next_page_id": null}))
    );
}

#[tokio::test]
async fn requests_are_recorded_per_agent_until_recording_is_off() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb-1", "key-1");
    fake.add_agent("sb-2", "key-2");
    let conversation = fake.add_conversation("sb-1", Value::Null);
    let one = Client::new(&fake, "sb-1");
    let events = format!("/api/conversations/{conversation}/events/search");
    one.get(&format!("{events}?limit=5&kind=ActionEvent&limit=7"))
        .await;
    one.get("/api/conversations/search").await;
    Client::new(&fake, "sb-2").get("/alive").await;
    Client::with_key(&fake, "ghost", None).get("/alive").await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, format!("/sb-1{events}"));
    assert_eq!(requests[0].agent.as_deref(), Some("sb-1"));
    assert_eq!(requests[0].agent_path, events);
    assert_eq!(requests[0].query, "limit=5&kind=ActionEvent&limit=7");
    assert_eq!(requests[0].query_value("limit").as_deref(), Some("7"));
    assert_eq!(requests[0].header("x-session-api-key"), Some("key-1"));
    assert!(requests[0].body.is_empty() && requests[0].json().is_none());
    assert_eq!(requests[3].agent, None);
    assert_eq!(requests[3].agent_path, "/ghost/alive");

    assert_eq!(fake.count("sb-1", "/events/search"), 1);
    assert_eq!(fake.count("/sb-1/", "/api/"), 2);
    assert_eq!(fake.count("sb-2", "/api/"), 0);
    assert_eq!(fake.count("sb-2", ""), 1);
    assert_eq!(fake.count_any("/alive"), 2);

    fake.clear_requests();
    assert!(fake.requests().is_empty());
    fake.set_recording(false);
    one.get("/alive").await;
    assert!(fake.requests().is_empty());
    assert_eq!(fake.total_requests(), 5);
    fake.set_recording(true);
    one.get("/alive").await;
    assert_eq!(fake.count("sb-1", "/alive"), 1);
}

#[tokio::test]
async fn shutdown_and_drop_close_the_port() {
    let fake = FakeAgentServer::start();
    let addr = fake.addr();
    fake.add_agent("sb", "k");
    let client = Client::new(&fake, "sb");
    assert_eq!(client.get("/alive").await.0, 200);

    // Shut down: the state is still readable, the API is unreachable.
    fake.shutdown();
    fake.shutdown();
    assert_eq!(fake.agents(), ["sb"]);
    let error = client
        .send(reqwest::Method::GET, "/alive")
        .await
        .expect_err("the fake is down");
    assert!(error.status().is_none(), "{error}");
    drop(fake);

    // Dropping a running fake frees its port too.
    let fake = FakeAgentServer::start();
    let addr_2 = fake.addr();
    assert!(TcpStream::connect(addr_2).is_ok());
    drop(fake);
    for addr in [addr, addr_2] {
        assert!(TcpStream::connect(addr).is_err(), "{addr} still accepts");
        TcpListener::bind(addr).expect("the port is free again");
    }
}

#[test]
#[should_panic(expected = "an agent already has prefix \"sb\"")]
fn registering_a_prefix_twice_is_a_test_bug() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "a");
    fake.add_agent("/sb", "b");
}

#[test]
#[should_panic(expected = "must be segments")]
fn prefixes_must_be_url_safe() {
    FakeAgentServer::start().add_agent("a b", "k");
}

#[test]
#[should_panic(expected = "no agent under prefix \"ghost\"")]
fn changing_an_unknown_agent_is_a_test_bug() {
    FakeAgentServer::start().add_conversation("ghost", Value::Null);
}

#[test]
#[should_panic(expected = "no conversation 00000000-0000-4000-8000-000000000000")]
fn adding_events_to_an_unknown_conversation_is_a_test_bug() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "k");
    fake.add_event("sb", "00000000-0000-4000-8000-000000000000", json!({}));
}

#[test]
fn the_handle_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FakeAgentServer>();
}
