//! `info`, `sandboxes` and `specs`.

use super::convert::{from_settings, from_share, to_info, to_spec};
use super::exports::sandboxd::plugin::{info, sandboxes, specs};
#[cfg(feature = "faults")]
use super::faults;
use super::sandboxd::plugin::{settings, types};
use super::{Component, with_service};

impl info::Guest for Component {
    fn info() -> info::PluginInfo {
        info::PluginInfo {
            plugin_version: crate::PLUGIN_VERSION.to_owned(),
            contract_version: crate::CONTRACT_VERSION.to_owned(),
        }
    }
}

impl sandboxes::Guest for Component {
    fn search(page_id: Option<String>, limit: u32) -> Result<types::SandboxPage, types::Error> {
        with_service(|s| s.search(page_id.as_deref(), limit)).map(|page| types::SandboxPage {
            items: page.items.into_iter().map(to_info).collect(),
            next_page_id: page.next_page_id,
        })
    }

    fn get(id: String) -> Result<types::SandboxInfo, types::Error> {
        #[cfg(feature = "faults")]
        if let Some(outcome) = faults::on_get(&id) {
            return outcome;
        }
        with_service(|s| s.get(&id)).map(to_info)
    }

    fn batch_get(ids: Vec<String>) -> Result<Vec<Option<types::SandboxInfo>>, types::Error> {
        with_service(|s| s.batch_get(&ids))
            .map(|all| all.into_iter().map(|i| i.map(to_info)).collect())
    }

    fn start(
        spec_id: Option<String>,
        sandbox_id: Option<String>,
    ) -> Result<types::SandboxInfo, types::Error> {
        with_service(|s| s.start(spec_id.as_deref(), sandbox_id.as_deref())).map(to_info)
    }

    fn pause(id: String) -> Result<(), types::Error> {
        with_service(|s| s.pause(&id))
    }

    fn resume(id: String) -> Result<(), types::Error> {
        with_service(|s| s.resume(&id))
    }

    fn delete(id: String) -> Result<(), types::Error> {
        with_service(|s| s.delete(&id))
    }

    fn get_by_session_key(key: String) -> Result<Option<types::SandboxInfo>, types::Error> {
        with_service(|s| s.get_by_session_key(&key)).map(|i| i.map(to_info))
    }

    fn reconcile(
        orphans: sandboxes::OrphanPolicy,
        stuck_before_us: i64,
        share: types::Share,
    ) -> Result<sandboxes::ReconcileSummary, types::Error> {
        let policy = match orphans {
            sandboxes::OrphanPolicy::Stop => crate::service::OrphanPolicy::Stop,
            sandboxes::OrphanPolicy::Adopt => crate::service::OrphanPolicy::Adopt,
            sandboxes::OrphanPolicy::Keep => crate::service::OrphanPolicy::Keep,
        };
        with_service(|s| s.reconcile(policy, stuck_before_us, &from_share(&share))).map(|r| {
            sandboxes::ReconcileSummary {
                runtimes: r.runtimes,
                records: r.records,
                orphans: r.orphans,
                stopped: r.stopped,
                adopted: r.adopted,
                completed: r.completed,
                removed: r.removed,
                failures: r.failures,
                statuses: sandboxes::StatusCounts {
                    starting: r.statuses.starting,
                    running: r.statuses.running,
                    paused: r.statuses.paused,
                    error: r.statuses.error,
                    missing: r.statuses.missing,
                },
            }
        })
    }
}

impl specs::Guest for Component {
    fn search(page_id: Option<String>, limit: u32) -> Result<types::SpecPage, types::Error> {
        let settings = from_settings(settings::get());
        let page = crate::specs::search(&settings, page_id.as_deref(), limit);
        Ok(types::SpecPage {
            items: page.items.into_iter().map(to_spec).collect(),
            next_page_id: page.next_page_id,
        })
    }

    fn batch_get(ids: Vec<String>) -> Result<Vec<Option<types::SandboxSpec>>, types::Error> {
        let settings = from_settings(settings::get());
        Ok(crate::specs::batch_get(&settings, &ids)
            .into_iter()
            .map(|s| s.map(to_spec))
            .collect())
    }
}
