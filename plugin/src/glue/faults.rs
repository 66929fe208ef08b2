//! Deliberate faults, compiled in only with the `faults` feature: the test
//! suite builds this variant to prove that the host contains a misbehaving
//! plugin. A normal build has none of this code.
//!
//! Getting a sandbox with one of these ids misbehaves instead of answering:
//!
//! | id                   | what the plugin does                                   |
//! |----------------------|--------------------------------------------------------|
//! | `fault-loop`         | computes forever                                       |
//! | `fault-alloc`        | allocates memory without bound                         |
//! | `fault-trap`         | panics (a trap)                                        |
//! | `fault-flood`        | sends requests to the runtime API without end          |
//! | `fault-egress-PORT`  | asks for `http://127.0.0.1:PORT/exfiltrate`, answers what the host said |
//! | `fault-background`   | from now on, every poll cycle and delivery run traps   |
//! | `fault-calm`         | undoes `fault-background`                              |
//! | `fault-remember`     | answers 400 saying what this instance's memory holds from earlier calls |
//!
//! Every other call behaves exactly like the normal plugin.

use std::sync::Mutex;

use super::sandboxd::plugin::{http, settings, storage, types, user_context};

/// Where the `fault-background` switch is kept.
const TABLE: &str = "faults";
const BACKGROUND_KEY: &[u8] = b"background";

/// The fault an id asks for, if it asks for one; `None` lets the call go on.
pub fn on_get(id: &str) -> Option<Result<types::SandboxInfo, types::Error>> {
    match id {
        "fault-loop" => spin(),
        "fault-alloc" => hoard(),
        "fault-trap" => panic!("deliberate trap (fault-trap)"),
        "fault-flood" => Some(flood()),
        "fault-background" => Some(set_background(true)),
        "fault-calm" => Some(set_background(false)),
        "fault-remember" => Some(remember()),
        _ => {
            let port = id.strip_prefix("fault-egress-")?;
            Some(egress(port))
        }
    }
}

/// Trap if `fault-background` is on: called first by `poll` and `deliver-due`.
pub fn before_background_call() {
    if let Ok(Some(_)) = storage::get(TABLE, BACKGROUND_KEY) {
        panic!("deliberate trap in a background call (fault-background)");
    }
}

/// What earlier calls on this instance left in its memory: a plugin's globals
/// are what a host that reused instances would carry from one caller to the
/// next. With a fresh instance per call, every answer says "call 1" and "no
/// earlier caller".
static MEMORY: Mutex<(u32, Option<String>)> = Mutex::new((0, None));

fn remember() -> Result<types::SandboxInfo, types::Error> {
    let user = user_context::current_user().unwrap_or_else(|| "(everyone)".into());
    let Ok(mut memory) = MEMORY.lock() else {
        return Err(types::Error::Internal("fault-remember: poisoned".into()));
    };
    memory.0 += 1;
    let earlier = memory.1.replace(user.clone());
    Err(types::Error::InvalidInput(format!(
        "fault-remember: call {} on this instance, for {user}; earlier caller: {}",
        memory.0,
        earlier.as_deref().unwrap_or("none")
    )))
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn hoard() -> ! {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really used.
        kept.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&kept);
    }
}

fn flood() -> Result<types::SandboxInfo, types::Error> {
    let url = format!("{}/list", settings::get().runtime_api_url);
    for _ in 0..10_000_000u64 {
        let _ = http::send(&http::Request {
            method: http::Method::Get,
            url: url.clone(),
            headers: Vec::new(),
            body: None,
            credential: http::Credential::RuntimeApi,
            timeout_ms: Some(1_000),
        });
    }
    Err(types::Error::Internal(
        "fault-flood: the host let ten million requests through".into(),
    ))
}

fn egress(port: &str) -> Result<types::SandboxInfo, types::Error> {
    let url = format!("http://127.0.0.1:{port}/exfiltrate");
    let outcome = http::send(&http::Request {
        method: http::Method::Post,
        url,
        headers: Vec::new(),
        body: Some(b"stolen".to_vec()),
        credential: http::Credential::None,
        timeout_ms: Some(2_000),
    });
    let said = match outcome {
        Ok(response) => format!("status {}", response.status),
        Err(http::HttpError::Denied(why)) => format!("denied: {why}"),
        Err(other) => format!("{other:?}"),
    };
    Err(types::Error::Upstream(format!(
        "fault-egress: the host answered {said}"
    )))
}

fn set_background(on: bool) -> Result<types::SandboxInfo, types::Error> {
    let op = if on {
        storage::Op::Put(storage::PutOp {
            table: TABLE.into(),
            key: BACKGROUND_KEY.to_vec(),
            value: b"1".to_vec(),
        })
    } else {
        storage::Op::Delete(storage::KeyRef {
            table: TABLE.into(),
            key: BACKGROUND_KEY.to_vec(),
        })
    };
    storage::commit(&[op]).map_err(|e| types::Error::Storage(format!("{e:?}")))?;
    Err(types::Error::NotFound(format!(
        "fault-background is now {}",
        if on { "on" } else { "off" }
    )))
}
