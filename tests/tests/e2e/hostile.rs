//! Hostile input, through every route of the real binary: malformed ids,
//! limits, page ids, query strings, JSON bodies (size, depth, types) and
//! headers. Each must be answered with a 4xx whose `detail` says what is wrong
//! (or, where the input is merely odd but harmless, a normal answer): never a
//! 5xx, never a dropped connection, and sandboxd serves normally afterwards.
//!
//! Requests are written byte by byte on a raw TCP connection, so that inputs a
//! well-behaved HTTP client refuses to send (bytes that are not UTF-8 in a
//! header, a bare `%` in a path) reach sandboxd as an attacker would send them.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

const KEY: &str = "hostile-user-key-0123456789";
const ADMIN: &str = "hostile-admin-key-0123456789";

/// What an input must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A 4xx with a `detail`.
    Refused,
    /// Anything but a 5xx; a 4xx still needs its `detail`.
    Harmless,
    /// Refused by hyper's HTTP parser with this status, before any route sees
    /// it (a control byte in the request line, a request line over 64 KiB):
    /// it answers and closes, with no body to give.
    Parser(u16),
}

struct Answer {
    status: u16,
    body: String,
}

/// One raw HTTP/1.1 request; the status and body of the answer.
async fn raw(addr: &str, head: &[u8], body: &[u8]) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut request = head.to_vec();
    request.extend_from_slice(b"Connection: close\r\n");
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer within 30 s".to_owned())?
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                text.chars().take(200).collect::<String>()
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Answer { status, body })
}

/// The `detail` of an error body (chunked bodies carry the JSON on one line).
fn detail(body: &str) -> Option<String> {
    body.lines().find_map(|line| {
        serde_json::from_str::<Value>(line.trim())
            .ok()?
            .get("detail")?
            .as_str()
            .map(str::to_owned)
    })
}

struct Case {
    name: String,
    head: Vec<u8>,
    body: Vec<u8>,
    want: Want,
}

fn case(
    name: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    want: Want,
) -> Case {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: sandboxd\r\n").into_bytes();
    let mut authorized = false;
    for (k, v) in headers {
        authorized |= k.eq_ignore_ascii_case("authorization");
        head.extend_from_slice(k.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v);
        head.extend_from_slice(b"\r\n");
    }
    if !authorized {
        head.extend_from_slice(format!("Authorization: Bearer {KEY}\r\n").as_bytes());
    }
    Case {
        name: name.to_owned(),
        head,
        body: body.to_vec(),
        want,
    }
}

fn get(name: &str, target: &str, want: Want) -> Case {
    case(name, "GET", target, &[], b"", want)
}

fn json_post(name: &str, target: &str, body: &[u8], want: Want) -> Case {
    case(
        name,
        "POST",
        target,
        &[("Content-Type", b"application/json")],
        body,
        want,
    )
}

fn nested(depth: usize) -> Vec<u8> {
    let mut v = "[".repeat(depth).into_bytes();
    v.extend("]".repeat(depth).into_bytes());
    v
}

fn cases(sandbox: &str, session_key: &str) -> Vec<Case> {
    use Want::*;
    let long = "a".repeat(10_000);
    let huge_query = format!("/api/v1/sandboxes?{}", "id=x&".repeat(20_000));
    let huge_event = format!(
        r#"[{{"id": "big", "kind": "x", "payload": "{}"}}]"#,
        "x".repeat(1 << 20)
    )
    .into_bytes();
    let mut c = vec![
        // Ids in paths.
        get("long id", &format!("/api/v1/sandboxes/{long}"), Refused),
        get("dot-dot id", "/api/v1/sandboxes/..", Refused),
        get("encoded slash", "/api/v1/sandboxes/a%2Fb", Refused),
        get("encoded NUL", "/api/v1/sandboxes/a%00b", Refused),
        get("bad percent", "/api/v1/sandboxes/a%zz", Refused),
        get("unicode id", "/api/v1/sandboxes/%E2%98%83", Refused),
        get(
            "raw bytes in path",
            "/api/v1/sandboxes/\u{7f}x",
            Parser(400),
        ),
        case(
            "pause long id",
            "POST",
            &format!("/api/v1/sandboxes/{long}/pause"),
            &[],
            b"",
            Refused,
        ),
        case(
            "delete bad id",
            "DELETE",
            "/api/v1/sandboxes/a%00",
            &[],
            b"",
            Refused,
        ),
        get(
            "conversation not a uuid",
            "/api/v1/conversations/not-a-uuid",
            Refused,
        ),
        get(
            "conversation long",
            &format!("/api/v1/conversations/{long}"),
            Refused,
        ),
        get(
            "events of a bad conversation",
            "/api/v1/conversations/zz/events/search",
            Refused,
        ),
        get(
            "stream of a bad conversation",
            "/api/v1/conversations/%00/events/stream",
            Refused,
        ),
        get(
            "callback bad id",
            &format!("/api/v1/event-callbacks/{long}"),
            Refused,
        ),
        get(
            "deliveries bad id",
            "/api/v1/event-callbacks/..%2F../deliveries",
            Refused,
        ),
        get("empty segments", "/api/v1//sandboxes//", Refused),
        get("unknown route", "/api/v1/sandboxes/x/y/z", Refused),
        case(
            "unknown method",
            "PROPFIND",
            "/api/v1/sandboxes/search",
            &[],
            b"",
            Refused,
        ),
        // Limits.
        get("limit 0", "/api/v1/sandboxes/search?limit=0", Refused),
        get("limit -1", "/api/v1/sandboxes/search?limit=-1", Refused),
        get("limit 101", "/api/v1/sandboxes/search?limit=101", Refused),
        get(
            "limit huge",
            "/api/v1/sandboxes/search?limit=99999999999999999999999",
            Refused,
        ),
        get("limit text", "/api/v1/sandboxes/search?limit=ten", Refused),
        get(
            "limit float",
            "/api/v1/conversations/search?limit=1.5",
            Refused,
        ),
        get(
            "events limit",
            "/api/v1/conversations/00000000000040008000000000000001/events/search?limit=0",
            Refused,
        ),
        get(
            "specs limit",
            "/api/v1/sandbox-specs/search?limit=1000",
            Refused,
        ),
        // Page ids: one this service cannot read starts from the first page (the
        // contract says so); only one longer than any it issues is refused.
        get(
            "page id junk",
            "/api/v1/sandboxes/search?page_id=%FF%FE%00junk",
            Harmless,
        ),
        get(
            "page id long",
            &format!("/api/v1/sandboxes/search?page_id={}", "Z".repeat(5000)),
            Refused,
        ),
        get(
            "page id negative",
            "/api/v1/sandboxes/search?page_id=-5",
            Harmless,
        ),
        get(
            "page id huge number",
            "/api/v1/sandboxes/search?page_id=99999999999999999999999",
            Harmless,
        ),
        get(
            "conversation page id junk",
            "/api/v1/conversations/search?page_id=!!!",
            Harmless,
        ),
        get(
            "event page id junk",
            "/api/v1/conversations/00000000000040008000000000000001/events/search?page_id=%00",
            Harmless,
        ),
        // Query strings.
        get(
            "bad percent in query",
            "/api/v1/sandboxes/search?limit=%zz",
            Refused,
        ),
        get(
            "101 ids",
            &format!("/api/v1/sandboxes?{}", "id=x&".repeat(101)),
            Refused,
        ),
        get("20000 ids", &huge_query, Parser(414)),
        get("no ids", "/api/v1/sandboxes", Refused),
        get(
            "long sandbox filter",
            &format!("/api/v1/conversations/search?sandbox_id={long}"),
            Refused,
        ),
        get(
            "bad timestamp",
            "/api/v1/conversations/00000000000040008000000000000001/events/search?timestamp__gte=yesterday",
            Refused,
        ),
        get(
            "bad sort order",
            "/api/v1/conversations/00000000000040008000000000000001/events/search?sort_order=SIDEWAYS",
            Refused,
        ),
        case(
            "start with an unknown spec",
            "POST",
            "/api/v1/sandboxes?sandbox_spec_id=%00evil",
            &[],
            b"",
            Refused,
        ),
        case(
            "start with a bad id",
            "POST",
            "/api/v1/sandboxes?sandbox_id=../../etc",
            &[],
            b"",
            Refused,
        ),
        case(
            "start with a long id",
            "POST",
            &format!("/api/v1/sandboxes?sandbox_id={long}"),
            &[],
            b"",
            Refused,
        ),
        // JSON bodies.
        json_post(
            "callback: not JSON",
            "/api/v1/event-callbacks",
            b"{not json",
            Refused,
        ),
        json_post(
            "callback: array",
            "/api/v1/event-callbacks",
            b"[1,2]",
            Refused,
        ),
        json_post(
            "callback: url a number",
            "/api/v1/event-callbacks",
            br#"{"url": 5}"#,
            Refused,
        ),
        json_post(
            "callback: file url",
            "/api/v1/event-callbacks",
            br#"{"url": "file:///etc/passwd"}"#,
            Refused,
        ),
        json_post(
            "callback: no host",
            "/api/v1/event-callbacks",
            br#"{"url": "http://"}"#,
            Refused,
        ),
        json_post(
            "callback: metadata address",
            "/api/v1/event-callbacks",
            br#"{"url": "http://169.254.169.254/latest"}"#,
            Refused,
        ),
        json_post(
            "callback: kinds not strings",
            "/api/v1/event-callbacks",
            br#"{"url": "http://127.0.0.1:1/x", "event_kinds": [1]}"#,
            Refused,
        ),
        json_post(
            "callback: bad conversation",
            "/api/v1/event-callbacks",
            br#"{"url": "http://127.0.0.1:1/x", "conversation_id": "../x"}"#,
            Refused,
        ),
        json_post(
            "callback: deep",
            "/api/v1/event-callbacks",
            &nested(100_000),
            Refused,
        ),
        json_post(
            "callback: too big",
            "/api/v1/event-callbacks",
            &vec![b' '; 200_000],
            Refused,
        ),
        json_post(
            "callback: not UTF-8",
            "/api/v1/event-callbacks",
            b"{\"url\": \"\xff\xfe\"}",
            Refused,
        ),
        // Webhooks (authenticated by the sandbox's session key).
        case(
            "webhook: no key",
            "POST",
            "/api/v1/webhooks/conversations",
            &[],
            b"{}",
            Refused,
        ),
        case(
            "webhook: key not UTF-8",
            "POST",
            "/api/v1/webhooks/conversations",
            &[("X-Session-API-Key", b"\xff\xfe")],
            b"{}",
            Refused,
        ),
        case(
            "webhook: long key",
            "POST",
            "/api/v1/webhooks/conversations",
            &[("X-Session-API-Key", long.as_bytes())],
            b"{}",
            Refused,
        ),
        case(
            "webhook: conversation not JSON",
            "POST",
            "/api/v1/webhooks/conversations",
            &[("X-Session-API-Key", session_key.as_bytes())],
            b"<xml/>",
            Refused,
        ),
        case(
            "webhook: conversation an array",
            "POST",
            "/api/v1/webhooks/conversations",
            &[("X-Session-API-Key", session_key.as_bytes())],
            b"[]",
            Refused,
        ),
        case(
            "webhook: conversation without id",
            "POST",
            "/api/v1/webhooks/conversations",
            &[("X-Session-API-Key", session_key.as_bytes())],
            br#"{"title": 5}"#,
            Refused,
        ),
        case(
            "webhook: conversation id a number",
            "POST",
            "/api/v1/webhooks/conversations",
            &[("X-Session-API-Key", session_key.as_bytes())],
            br#"{"id": 12}"#,
            Refused,
        ),
        case(
            "webhook: conversation deep",
            "POST",
            "/api/v1/webhooks/conversations",
            &[("X-Session-API-Key", session_key.as_bytes())],
            &nested(100_000),
            Refused,
        ),
        case(
            "webhook: conversation too big",
            "POST",
            "/api/v1/webhooks/conversations",
            &[("X-Session-API-Key", session_key.as_bytes())],
            &vec![b' '; 5 << 20],
            Refused,
        ),
        case(
            "webhook: events an object",
            "POST",
            "/api/v1/webhooks/events/00000000000040008000000000000001",
            &[("X-Session-API-Key", session_key.as_bytes())],
            b"{}",
            Refused,
        ),
        case(
            "webhook: events numbers",
            "POST",
            "/api/v1/webhooks/events/00000000000040008000000000000001",
            &[("X-Session-API-Key", session_key.as_bytes())],
            b"[1, 2, 3]",
            Refused,
        ),
        case(
            "webhook: events without ids (kept by digest)",
            "POST",
            "/api/v1/webhooks/events/00000000000040008000000000000001",
            &[("X-Session-API-Key", session_key.as_bytes())],
            br#"[{"kind": "x"}]"#,
            Harmless,
        ),
        case(
            "webhook: an event larger than the store keeps",
            "POST",
            "/api/v1/webhooks/events/00000000000040008000000000000001",
            &[("X-Session-API-Key", session_key.as_bytes())],
            &huge_event,
            Refused,
        ),
        case(
            "webhook: events deep",
            "POST",
            "/api/v1/webhooks/events/00000000000040008000000000000001",
            &[("X-Session-API-Key", session_key.as_bytes())],
            &nested(100_000),
            Refused,
        ),
        case(
            "webhook: events bad conversation",
            "POST",
            "/api/v1/webhooks/events/..",
            &[("X-Session-API-Key", session_key.as_bytes())],
            b"[]",
            Refused,
        ),
        // Headers.
        case(
            "no authorization",
            "GET",
            "/api/v1/sandboxes/search",
            &[("Authorization", b"")],
            b"",
            Refused,
        ),
        case(
            "bearer only",
            "GET",
            "/api/v1/sandboxes/search",
            &[("Authorization", b"Bearer")],
            b"",
            Refused,
        ),
        case(
            "basic auth",
            "GET",
            "/api/v1/sandboxes/search",
            &[("Authorization", b"Basic YWxhZGRpbjpvcGVuc2VzYW1l")],
            b"",
            Refused,
        ),
        case(
            "authorization not UTF-8",
            "GET",
            "/api/v1/sandboxes/search",
            &[("Authorization", b"Bearer \xff\xfe\xfd")],
            b"",
            Refused,
        ),
        case(
            "authorization huge",
            "GET",
            "/api/v1/sandboxes/search",
            &[(
                "Authorization",
                format!("Bearer {}", "k".repeat(60_000)).as_bytes(),
            )],
            b"",
            Refused,
        ),
        case(
            "admin route as a user",
            "POST",
            "/api/v1/admin/reconcile",
            &[],
            b"",
            Refused,
        ),
        case(
            "admin reload as a user",
            "POST",
            "/api/v1/admin/plugin/reload",
            &[],
            b"",
            Refused,
        ),
        case(
            "wrong content type",
            "POST",
            "/api/v1/event-callbacks",
            &[("Content-Type", b"text/plain")],
            br#"{"url": "http://127.0.0.1:1/x"}"#,
            Harmless,
        ),
    ];
    // The user's own sandbox, with odd but harmless additions.
    c.push(get(
        "own sandbox, extra params",
        &format!("/api/v1/sandboxes/{sandbox}?x=%00&y"),
        Harmless,
    ));
    c.push(get(
        "search, repeated limit",
        "/api/v1/sandboxes/search?limit=5&limit=7",
        Harmless,
    ));
    c.push(case(
        "admin with a huge body",
        "POST",
        "/api/v1/admin/reconcile",
        &[("Authorization", format!("Bearer {ADMIN}").as_bytes())],
        &vec![b'x'; 1 << 20],
        Harmless,
    ));
    c
}

#[tokio::test]
async fn hostile_input_gets_a_4xx_that_says_why_and_never_a_5xx() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let sd = Sandboxd::start_with(Options::for_runtime(&rt).config(&format!(
        "[auth]\nmode = \"api-keys\"\n\
         [[auth.keys]]\nkey = \"{KEY}\"\nuser_id = \"mallory\"\n\
         [[auth.keys]]\nkey = \"{ADMIN}\"\nadmin = true\n"
    )));
    let api = sd.api().with_key(KEY);
    let sb = api.start().await;
    let sandbox = sb["id"].as_str().unwrap_or_default().to_owned();
    let session_key = sb["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let addr = sd
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();

    let mut failures = Vec::new();
    for c in cases(&sandbox, &session_key) {
        match raw(&addr, &c.head, &c.body).await {
            Err(e) => failures.push(format!("{}: {e}", c.name)),
            Ok(a) if matches!(c.want, Want::Parser(_)) => {
                if c.want != Want::Parser(a.status) {
                    failures.push(format!("{}: {} {}", c.name, a.status, a.body));
                }
            }
            Ok(a) if a.status >= 500 => {
                failures.push(format!("{}: {} {}", c.name, a.status, a.body))
            }
            Ok(a) if a.status >= 400 && detail(&a.body).is_none_or(|d| d.trim().is_empty()) => {
                failures.push(format!(
                    "{}: {} without a detail: {}",
                    c.name, a.status, a.body
                ))
            }
            Ok(a) if c.want == Want::Refused && a.status < 400 => {
                failures.push(format!("{}: accepted ({}): {}", c.name, a.status, a.body))
            }
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} hostile inputs were mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Still serving, and the user's sandbox is intact.
    assert_eq!(api.get("/healthz").await.status, 200);
    assert_eq!(api.sandbox(&sandbox).await["status"], "RUNNING");
}
