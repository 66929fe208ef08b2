//! The wire API of one agent: auth, ids, ConversationInfo, errors.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use super::super::FakeAgentServer;
use super::{Client, ids_of};

#[tokio::test]
async fn alive_and_health_need_no_key_and_the_api_needs_the_agents_key() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb-1", "key-1");
    fake.add_agent("sb-2", "key-2");
    let conversation = fake.add_conversation("sb-1", Value::Null);
    let anonymous = Client::with_key(&fake, "sb-1", None);

    assert_eq!(
        anonymous.get("/alive").await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(anonymous.get("/health").await, (200, json!("OK")));
    let unauthorized = (401, json!({"detail": "Unauthorized"}));
    for path in [
        "/api/conversations/search".to_owned(),
        format!("/api/conversations/{conversation}"),
        format!("/api/conversations/{conversation}/events/search"),
        // The key is checked before the route.
        "/api/nothing/here".to_owned(),
    ] {
        assert_eq!(anonymous.get(&path).await, unauthorized, "{path}");
        let wrong = Client::with_key(&fake, "sb-1", Some("key-2"));
        assert_eq!(wrong.get(&path).await, unauthorized, "{path}");
    }
    let client = Client::new(&fake, "sb-1");
    assert_eq!(client.get("/api/conversations/search").await.0, 200);
    assert_eq!(client.get("/api/nothing/here").await.0, 404);

    // Keys rotate: the old one stops working at once.
    fake.set_key("sb-1", "key-1b");
    assert_eq!(fake.session_key("sb-1").as_deref(), Some("key-1b"));
    assert_eq!(client.get("/api/conversations/search").await, unauthorized);
    let rotated = Client::new(&fake, "sb-1");
    assert_eq!(rotated.get("/api/conversations/search").await.0, 200);

    // The recorded request shows the header as sent.
    let last = fake.requests().pop().expect("recorded");
    assert_eq!(last.header("X-SESSION-API-KEY"), Some("key-1b"));
}

#[tokio::test]
async fn conversations_are_found_by_dashed_undashed_or_upper_case_ids() {
    let fake = FakeAgentServer::start();
    fake.add_agent("", "key");
    let id = fake.add_conversation("", json!({"execution_status": "running"}));
    let client = Client::new(&fake, "");
    assert_eq!(id.len(), 36);
    let undashed = id.replace('-', "");

    let (status, info) = client.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["id"], id);
    assert_eq!(Some(info.clone()), fake.conversation("", &undashed));
    for spelling in [undashed.clone(), id.to_uppercase()] {
        assert_eq!(
            client.get(&format!("/api/conversations/{spelling}")).await,
            (200, info.clone())
        );
    }

    // An unknown UUID is 404, anything else 422 (FastAPI's UUID parameter).
    let unknown = "00000000-0000-4000-8000-000000000000";
    let not_found = (404, json!({"detail": "Not Found"}));
    assert_eq!(
        client.get(&format!("/api/conversations/{unknown}")).await,
        not_found
    );
    assert_eq!(
        client
            .get(&format!("/api/conversations/{unknown}/events/search"))
            .await,
        not_found
    );
    for bad in ["nope", "1234", &undashed[1..]] {
        let (status, body) = client.get(&format!("/api/conversations/{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["path", "conversation_id"]));
        assert_eq!(body["detail"][0]["input"], bad);
        let path = format!("/api/conversations/{bad}/events/search");
        assert_eq!(client.get(&path).await.0, 422);
    }
    for path in [
        "/api/conversations".to_owned(),
        format!("/api/conversations/{id}/"),
        format!("/api/conversations/{id}/events"),
        format!("/api/conversations/{id}/events/search/x"),
        "/apix".to_owned(),
        "/nothing".to_owned(),
    ] {
        assert_eq!(client.get(&path).await, not_found, "{path}");
    }
    let (status, _) = client
        .send(reqwest::Method::POST, "/api/conversations/search")
        .await
        .expect("answered");
    assert_eq!(status, 405);
}

#[tokio::test]
async fn conversation_info_has_the_contract_fields_and_follows_updates() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "key");
    let id = fake.add_conversation(
        "sb",
        json!({"title": "Fix the bug", "agent": {"llm": {"model": "gpt-x"}}, "tags": {"a": "b"}}),
    );
    let client = Client::new(&fake, "sb");
    let path = format!("/api/conversations/{id}");
    let (_, info) = client.get(&path).await;
    assert_eq!(info["execution_status"], "idle");
    assert_eq!(info["title"], "Fix the bug");
    assert_eq!(info["agent"]["llm"]["model"], "gpt-x");
    assert_eq!(info["agent"]["kind"], "Agent", "overrides merge deeply");
    assert_eq!(info["tags"], json!({"a": "b"}));
    assert!(
        info["stats"].is_object() && info["metrics"].is_object(),
        "{info}"
    );
    assert!(
        info["workspace"].is_object(),
        "extra fields a real server has"
    );
    let created = info["created_at"].as_str().expect("created_at");
    assert!(created.ends_with('Z'), "{created}");
    assert_eq!(info["updated_at"], info["created_at"]);

    // update_conversation merges and bumps updated_at.
    std::thread::sleep(std::time::Duration::from_millis(2));
    fake.update_conversation("sb", &id, json!({"execution_status": "finished"}));
    let (_, updated) = client.get(&path).await;
    assert_eq!(updated["execution_status"], "finished");
    assert_eq!(updated["title"], "Fix the bug");
    assert_ne!(updated["updated_at"], info["updated_at"]);
    fake.update_conversation("sb", &id, json!({"updated_at": "2030-01-01T00:00:00Z"}));
    assert_eq!(
        client.get(&path).await.1["updated_at"],
        "2030-01-01T00:00:00Z"
    );

    // edit_conversation changes only what it is told, and can break anything.
    let old_status = fake.edit_conversation("sb", &id, |info| {
        info.remove("title");
        info.insert("execution_status".into(), json!(5));
        info.insert("id".into(), json!(null));
        info.get("updated_at").cloned()
    });
    assert_eq!(old_status, Some(json!("2030-01-01T00:00:00Z")));
    let (status, broken) = client.get(&path).await;
    assert_eq!(status, 200);
    assert!(broken.get("title").is_none());
    assert_eq!(broken["execution_status"], 5);
    assert_eq!(broken["id"], Value::Null);
    assert_eq!(broken["updated_at"], "2030-01-01T00:00:00Z");

    // Events do not touch the conversation.
    fake.add_event("sb", &id, json!({}));
    assert_eq!(client.get(&path).await.1, broken);

    assert!(fake.remove_conversation("sb", &id));
    assert!(!fake.remove_conversation("sb", &id));
    assert_eq!(client.get(&path).await.0, 404);
    assert!(fake.conversations("sb").is_empty());
}

#[tokio::test]
async fn invalid_parameters_are_422_with_fastapi_errors() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "key");
    let id = fake.add_conversation("sb", Value::Null);
    let client = Client::new(&fake, "sb");
    let events = format!("/api/conversations/{id}/events/search");

    for (path, query, loc) in [
        ("/api/conversations/search", "limit=0", "limit"),
        ("/api/conversations/search", "limit=101", "limit"),
        ("/api/conversations/search", "limit=ten", "limit"),
        ("/api/conversations/search", "limit=", "limit"),
        (
            "/api/conversations/search",
            "sort_order=NEWEST",
            "sort_order",
        ),
        ("/api/conversations/search", "status=IDLE", "status"),
        (events.as_str(), "limit=-1", "limit"),
        (events.as_str(), "limit=1000", "limit"),
        (events.as_str(), "sort_order=timestamp", "sort_order"),
        (
            events.as_str(),
            "timestamp__gte=yesterday",
            "timestamp__gte",
        ),
        // An unescaped `+` decodes to a space.
        (
            events.as_str(),
            "timestamp__lt=2025-06-01T00:00:00+00:00",
            "timestamp__lt",
        ),
    ] {
        let (status, body) = client.get(&format!("{path}?{query}")).await;
        assert_eq!(status, 422, "{path}?{query}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", loc]), "{body}");
        assert!(body["detail"][0]["msg"].is_string(), "{body}");
    }
    // Every error at once.
    let (_, body) = client.get(&format!("{events}?limit=0&sort_order=x")).await;
    assert_eq!(body["detail"].as_array().map(Vec::len), Some(2), "{body}");

    for query in [
        "limit=1",
        "limit=100",
        "limit=5&limit=1",
        "status=idle",
        "other=1",
    ] {
        let (status, body) = client
            .get(&format!("/api/conversations/search?{query}"))
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(ids_of(&body), std::slice::from_ref(&id), "{query}");
    }
}

/// Plain blocking sockets, no async runtime in the test: the fake serves callers
/// that have none.
#[test]
fn serves_sync_callers_over_raw_http() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb-1", "k");
    let mut stream = TcpStream::connect(fake.addr()).expect("connect");
    write!(
        stream,
        "GET /sb-1/api/conversations/search HTTP/1.1\r\n\
         Host: x\r\nx-session-api-key: k\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("content-type: application/json"),
        "{answer}"
    );
    assert!(
        answer.ends_with(r#"{"items":[],"next_page_id":null}"#),
        "{answer}"
    );
}
