//! The service's behaviour against in-memory fakes of its imports.

use serde_json::json;

use crate::error::Error;
use crate::model::Status;
use crate::ports::HttpError;
use crate::schema::{self, Phase, SandboxRecord};
use crate::session_key;
use crate::share::Share;
use crate::testing::{Fault, World};

fn record(w: &World, id: &str) -> Option<SandboxRecord> {
    w.store
        .raw_get(schema::SANDBOXES, id.as_bytes())
        .and_then(|b| SandboxRecord::decode(&b).ok())
}

fn start(w: &World, user: Option<&str>) -> String {
    match w.as_user(user).start(None, None) {
        Ok(info) => info.id,
        Err(e) => panic!("start failed: {e}"),
    }
}

fn ok<T>(r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

fn start_many(w: &World, user: Option<&str>, n: usize) -> Vec<String> {
    (0..n).map(|_| start(w, user)).collect()
}

mod actions;
mod lifecycle;
mod limits;
mod reconcile;
mod retries;
mod scoping;
mod search;
mod start;
mod status;
mod warm;
