//! `lifecycle`.

use super::convert::{from_share, to_info, to_status};
use super::exports::sandboxd::plugin::lifecycle;
use super::sandboxd::plugin::types;
use super::{Component, with_service};
use crate::model::Cause;

impl lifecycle::Guest for Component {
    fn history(
        id: String,
        page_id: Option<String>,
        limit: u32,
    ) -> Result<lifecycle::HistoryPage, types::Error> {
        with_service(|s| s.history(&id, page_id.as_deref(), limit)).map(|page| {
            lifecycle::HistoryPage {
                items: page
                    .items
                    .into_iter()
                    .map(|c| lifecycle::StatusChange {
                        at: c.at,
                        status: to_status(c.status),
                        previous_status: c.previous_status.map(to_status),
                        cause: to_cause(c.cause),
                        detail: c.detail,
                    })
                    .collect(),
                next_page_id: page.next_page_id,
            }
        })
    }

    fn pass(share: types::Share) -> Result<lifecycle::PassSummary, types::Error> {
        with_service(|s| s.lifecycle_pass(&from_share(&share))).map(|p| lifecycle::PassSummary {
            sandboxes: p.sandboxes,
            observed: p.observed,
            paused: p.paused,
            deleted: p.deleted,
            keys_retired: p.keys_retired,
            histories_purged: p.histories_purged,
            warm_started: p.warm_started,
            warm_ready: p.warm_ready,
            failures: p.failures,
        })
    }

    fn wake(id: String) -> Result<types::SandboxInfo, types::Error> {
        with_service(|s| s.wake(&id)).map(to_info)
    }
}

fn to_cause(c: Cause) -> lifecycle::Cause {
    match c {
        Cause::User => lifecycle::Cause::User,
        Cause::Limit => lifecycle::Cause::Limit,
        Cause::Idle => lifecycle::Cause::Idle,
        Cause::MaxRunning => lifecycle::Cause::MaxRunning,
        Cause::Ttl => lifecycle::Cause::Ttl,
        Cause::StartTimeout => lifecycle::Cause::StartTimeout,
        Cause::Runtime => lifecycle::Cause::Runtime,
        Cause::Reconcile => lifecycle::Cause::Reconcile,
        Cause::Wake => lifecycle::Cause::Wake,
    }
}
